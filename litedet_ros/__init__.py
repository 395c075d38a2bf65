"""litedet_ros: lightweight-detector bin picking for ROS 2.

The Python sources and the interfaces generated from ``msg/`` and ``srv/`` share the package name
``litedet_ros``. In a colcon install space both live in one directory. In a development checkout
the sources are imported from the work tree and the generated ``litedet_ros.msg`` /
``litedet_ros.srv`` modules from the colcon install space; ``extend_path`` joins the two
directories into this one package.
"""

from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)

__version__ = '0.1.0'
