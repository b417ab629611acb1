"""The optimization loops on top of the renderer: views, losses, fit (and later style / dream).

Modules: ``views`` (camera sets), ``losses`` (silhouette terms, mesh regularizers), ``voxels``
(voxel IoU of closed meshes), ``targets`` (mesh or image targets), ``settings`` (presets), ``fit``
(the loop), ``evaluate`` (IoU figures), ``textured`` (the loop on vertices + per-face textures shared by
style and dream), ``style`` (style settings, image and loss), ``backbones`` and ``image_losses``.
"""
