"""The optimization loops on top of the renderer: views, losses, fit (and later style / dream).

Modules: ``views`` (camera sets), ``losses`` (silhouette terms, mesh regularizers), ``voxels``
(voxel IoU of closed meshes), ``targets`` (mesh or image targets), ``settings`` (presets), ``fit``
(the loop), ``evaluate`` (IoU figures).
"""
