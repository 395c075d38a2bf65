"""Validated parameters of the simulated workcell node, without ROS (bench picks reads them)."""

from __future__ import annotations

from dataclasses import dataclass, field

from litedet_ros.description import default_finger_length
from litedet_ros.errors import LitedetError
from litedet_ros.sim.workcell import WorkcellConfig, check_scene_request


@dataclass(frozen=True)
class SimNodeConfig:
    """Validated node parameters (see ``sim_node.PARAMETERS`` for meanings)."""

    seed: int = 0
    num_objects: int = 10
    real_time_factor: float = 1.0
    camera_rate: float = 15.0
    joint_state_rate: float = 100.0
    objects_rate: float = 10.0
    depth_encoding: str = '16UC1'
    depth_noise: bool = True
    start_tolerance: float = 0.05
    finger_length: float = field(default_factory=default_finger_length)

    def __post_init__(self) -> None:
        check_scene_request(self.seed, self.num_objects)
        if self.depth_encoding not in ('16UC1', '32FC1'):
            raise LitedetError(f'depth_encoding must be 16UC1 or 32FC1, got '
                               f'{self.depth_encoding!r}')
        rates = (self.camera_rate, self.joint_state_rate, self.objects_rate)
        if min(rates) <= 0 or self.real_time_factor < 0 or self.start_tolerance < 0:
            raise LitedetError('rates must be > 0, real_time_factor and start_tolerance >= 0')
        if not self.finger_length > 0:
            raise LitedetError(f'finger_length must be > 0, got {self.finger_length}')

    def workcell_config(self) -> WorkcellConfig:
        """The cell these parameters describe (D435 depth artefacts unless ``depth_noise`` off)."""
        return WorkcellConfig(start_tolerance=self.start_tolerance,
                              depth_model=WorkcellConfig().depth_model if self.depth_noise
                              else None,
                              description={'finger_length': self.finger_length})
