"""meshopt: optimize 3D meshes through a differentiable mesh renderer.

Importing the package is cheap; torch is imported by the sub-packages that need it
(``meshopt_cli.render``, ``meshopt_cli.mesh``, ...).
"""

__version__ = "0.1.0"
