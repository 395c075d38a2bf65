"""Default topic and service names of the node graph, in one place.

All names are relative, so a namespace or a remapping moves them as a whole. Camera names follow
realsense-ros 4.x (``camera`` namespace and ``camera`` node name), so the official
``realsense2_camera`` driver, this package's ``camera_node`` and the simulated workcell are
interchangeable. Images travel with sensor-data QoS (best effort, keep last 5); everything else
with the default reliable QoS.
"""

COLOR_IMAGE = 'camera/camera/color/image_raw'
COLOR_INFO = 'camera/camera/color/camera_info'
DEPTH_IMAGE = 'camera/camera/aligned_depth_to_color/image_raw'
DEPTH_INFO = 'camera/camera/aligned_depth_to_color/camera_info'
# depth in its own optical frame, published instead when alignment is off
DEPTH_RAW_IMAGE = 'camera/camera/depth/image_rect_raw'
DEPTH_RAW_INFO = 'camera/camera/depth/camera_info'

DETECTIONS = 'detections'  # litedet_ros/DetectionArray
DETECTIONS_IMAGE = 'detections/image'  # sensor_msgs/Image, boxes drawn

GRASPS = 'grasps'  # litedet_ros/GraspArray, ranked
GRASP_POSES = 'grasps/poses'  # geometry_msgs/PoseArray, sorted by score
GRASP_MARKERS = 'grasps/markers'  # visualization_msgs/MarkerArray

JOINT_STATES = 'joint_states'  # sensor_msgs/JointState
# where a ros2_control joint_trajectory_controller listens
JOINT_TRAJECTORY = 'joint_trajectory_controller/joint_trajectory'
# ros2_control forward_command_controller style: data = [finger opening, m]
GRIPPER_COMMAND = 'gripper_controller/commands'
PICK_STATUS = 'pick_status'  # litedet_ros/PickStatus
PLANNED_PATH = 'planned_path'  # visualization_msgs/Marker, TCP path of the latest motion

SIM_OBJECTS = 'sim/objects'  # litedet_ros/ObjectStateArray (ground truth, evaluation only)
SIM_RESET_BIN = 'sim/reset_bin'  # litedet_ros/srv/ResetBin
