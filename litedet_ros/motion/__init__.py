"""Motion planning and the pick-and-place task: robot model, IK, planning, backends."""
