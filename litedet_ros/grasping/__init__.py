"""Grasp planning from 2D detections and aligned depth: ROS-free geometry and scoring."""
