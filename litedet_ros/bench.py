"""``litedet-ros bench <area>``: benchmarks that print a table and can save their figures."""

# area -> (module, one-line help); each module exposes add_arguments(parser) and run(args)
COMMANDS: dict[str, tuple[str, str]] = {
    'detector': ('litedet_ros.detection.bench',
                 'detector variants: mAP, size, model and node end-to-end latency'),
    'e2e': ('litedet_ros.bringup.bench', 'the whole loop through the real nodes over many bins'),
    'picks': ('litedet_ros.bringup.pick_bench',
              'the e2e protocol in one process, no ROS: settings side by side, failure causes'),
    'grasp': ('litedet_ros.grasping.bench',
              'grasp accuracy vs ground truth, free-gripper success, planner latency'),
    'perception': ('litedet_ros.bringup.perception_bench',
                   'frame-to-grasp latency of camera -> detector -> grasp planner alone'),
    'motion': ('litedet_ros.motion.cli',
               'IK, planning and TOPP-RA figures of the built-in motion backend'),
}
