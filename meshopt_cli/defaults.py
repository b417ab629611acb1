"""Defaults that the renderer side (``render``, ``optimize``) and the command layer share.

This module imports nothing, so the command layer can use it without importing torch (``meshopt
--help`` stays quick); ``meshopt_cli.render`` re-exports what belongs to the camera.
"""

#: The paper's camera distance from the origin, in the units of a mesh normalised into [-1, 1] by
#: its longest side (``mesh.box_normalization``): the default of every command and view set. It
#: rounds the distance of the ``Renderer``'s default eye, 1 / tan(30 degrees) + 1 = 2.7320508,
#: which the renderer derives from its viewing angle.
DEFAULT_DISTANCE = 2.732
