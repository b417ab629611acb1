"""The paper's reconstruction network: an image encoder and a mesh decoder that moves the
vertices of a sphere, trained through the renderer with silhouettes only.

Encoder: three 5×5 stride-2 convolutions (64, 128, 256 channels, ReLU), then fully connected
1024, 1024, 512 (ReLU). Decoder: fully connected 1024, 2048 (ReLU), then a centroid head
(3 numbers, ×0.1, learning rate ×0.1) and a per-vertex bias head (3 per vertex). The reference's
box trick keeps every vertex inside the unit box: a template coordinate ``s`` (the unit sphere
times 0.5) becomes ``sign(s) · sigmoid(logit(|s|) + bias)`` — with zero bias ``s`` itself — and
is then scaled into ``(-1, 1)`` around ``tanh(centroid)`` and halved, so each coordinate lies
strictly inside ``(-0.5, 0.5)`` whatever the network outputs. With zero outputs the mesh is the
undeformed template, a sphere of radius 0.25 (:func:`undeformed`). Weights start as LeCun normal with
zero biases, the reference framework's defaults.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn

from meshopt_cli.mesh.builtins import icosphere
from meshopt_cli.optimize.losses import MeshTopology, flatten_loss, iou_loss
from meshopt_cli.reconstruct.dataset import silhouette_renderer

TEMPLATE_SUBDIVISIONS = 3  # 642 vertices, 1280 faces: the paper's template
_MIN_TEMPLATE = 1e-3  # |s| below this (coordinates 0 of the icosphere) starts at this


def lecun_init(module: nn.Module) -> None:
    for layer in module.modules():
        if isinstance(layer, (nn.Linear, nn.Conv2d)):
            fan_in = layer.weight[0].numel()
            nn.init.normal_(layer.weight, 0.0, 1.0 / math.sqrt(fan_in))
            nn.init.zeros_(layer.bias)


class Encoder(nn.Module):
    def __init__(self, image_size: int = 64, dim_in: int = 4, dim_out: int = 512):
        super().__init__()
        if image_size % 8:
            raise ValueError(f"the encoder needs an image size divisible by 8, got {image_size}")
        self.conv1 = nn.Conv2d(dim_in, 64, 5, stride=2, padding=2)
        self.conv2 = nn.Conv2d(64, 128, 5, stride=2, padding=2)
        self.conv3 = nn.Conv2d(128, 256, 5, stride=2, padding=2)
        self.linear1 = nn.Linear(256 * (image_size // 8) ** 2, 1024)
        self.linear2 = nn.Linear(1024, 1024)
        self.linear3 = nn.Linear(1024, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv1(x))
        x = torch.relu(self.conv2(x))
        x = torch.relu(self.conv3(x))
        x = x.flatten(1)
        x = torch.relu(self.linear1(x))
        x = torch.relu(self.linear2(x))
        return torch.relu(self.linear3(x))


class Decoder(nn.Module):
    centroid_scale = 0.1
    bias_scale = 1.0
    template_scale = 0.5

    def __init__(self, template_vertices: torch.Tensor, template_faces: torch.Tensor, dim_in: int = 512):
        super().__init__()
        base = template_vertices.float() * self.template_scale
        self.register_buffer("sign", torch.where(base >= 0, 1.0, -1.0))
        magnitude = base.abs().clamp(_MIN_TEMPLATE, 1 - _MIN_TEMPLATE)
        self.register_buffer("logit", torch.log(magnitude / (1 - magnitude)))
        self.register_buffer("faces", template_faces.long())
        self.num_vertices = int(template_vertices.shape[0])
        self.linear1 = nn.Linear(dim_in, 1024)
        self.linear2 = nn.Linear(1024, 2048)
        self.linear_centroids = nn.Linear(2048, 3)
        self.linear_bias = nn.Linear(2048, self.num_vertices * 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Vertices ``[B, V, 3]``, every coordinate in (-0.5, 0.5)."""
        h = torch.relu(self.linear1(x))
        h = torch.relu(self.linear2(h))
        centroids = torch.tanh(self.linear_centroids(h) * self.centroid_scale)[:, None, :]  # [B, 1, 3]
        bias = (self.linear_bias(h) * self.bias_scale).view(-1, self.num_vertices, 3)
        vertices = torch.sigmoid(self.logit + bias) * self.sign
        vertices = torch.relu(vertices) * (1 - centroids) - torch.relu(-vertices) * (centroids + 1)
        return (vertices + centroids) * 0.5


def template(subdivisions: int = TEMPLATE_SUBDIVISIONS) -> tuple[torch.Tensor, torch.Tensor]:
    """The unit icosphere (642 vertices by default) as float32 and int64 tensors."""
    vertices, faces = icosphere(subdivisions)
    vertices = vertices / (vertices**2).sum(1, keepdims=True) ** 0.5
    return torch.as_tensor(vertices, dtype=torch.float32), torch.as_tensor(faces, dtype=torch.int64)


def undeformed(subdivisions: int = TEMPLATE_SUBDIVISIONS) -> tuple[torch.Tensor, torch.Tensor]:
    """What the decoder gives for zero centroid and bias: the template sphere, radius 0.25."""
    vertices, faces = template(subdivisions)
    return vertices * Decoder.template_scale * 0.5, faces


class Reconstructor(nn.Module):
    """Encoder + decoder + the silhouette renderer and the training loss.

    ``encoder_bf16`` (set by training's ``precision``; not saved) runs the encoder under bf16
    autocast and hands the decoder its code as float32, so vertices are computed in float32.
    """

    encoder_bf16 = False

    def __init__(self, image_size: int = 64, template_subdivisions: int = TEMPLATE_SUBDIVISIONS, lambda_smoothness: float = 0.0):
        super().__init__()
        vertices, faces = template(template_subdivisions)
        self.encoder = Encoder(image_size)
        self.decoder = Decoder(vertices, faces)
        self.image_size = image_size
        self.lambda_smoothness = lambda_smoothness
        topology = MeshTopology.from_faces(faces, len(vertices))
        self.register_buffer("edge_quads", topology.edge_quads, persistent=False)
        self.topology = topology
        self.renderer = silhouette_renderer(image_size)
        lecun_init(self)

    def parameter_groups(self, learning_rate: float) -> list[dict]:
        """Adam groups: the centroid head learns at 0.1 times the rate (the reference's ``lr``)."""
        centroid = list(self.decoder.linear_centroids.parameters())
        ids = {id(p) for p in centroid}
        rest = [p for p in self.parameters() if id(p) not in ids]
        return [dict(params=rest, lr=learning_rate, scale=1.0), dict(params=centroid, lr=learning_rate * 0.1, scale=0.1)]

    @property
    def faces(self) -> torch.Tensor:
        return self.decoder.faces

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """``images [B, 4, S, S]`` in [0, 1] -> the code ``[B, 512]``, float32 (bf16 inside with ``encoder_bf16``)."""
        with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=self.encoder_bf16):
            return self.encoder(images).float()

    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        """``images [B, 4, S, S]`` in [0, 1] -> vertices ``[B, V, 3]``."""
        return self.decoder(self.encode(images))

    def forward(self, images_a, images_b, eyes_a, eyes_b) -> dict[str, torch.Tensor]:
        """The reference's loss on a batch of two views per object: each view's mesh drawn from
        both viewpoints against both masks (four IoU terms), plus the smoothness term."""
        batch = images_a.shape[0]
        vertices = self.reconstruct(torch.cat((images_a, images_b)))  # [a, b]
        both = torch.cat((vertices, vertices))  # [a, b, a, b]
        self.renderer.eye = torch.cat((eyes_a, eyes_a, eyes_b, eyes_b))
        faces = self.faces[None].expand(4 * batch, -1, -1)
        silhouettes = self.renderer.render_silhouettes(both, faces)
        s_aa, s_ba, s_ab, s_bb = silhouettes.split(batch)
        mask_a, mask_b = images_a[:, 3], images_b[:, 3]
        silhouette = (iou_loss(s_aa, mask_a) + iou_loss(s_ba, mask_a) + iou_loss(s_ab, mask_b) + iou_loss(s_bb, mask_b)) / 4
        topology = dataclasses.replace(self.topology, edge_quads=self.edge_quads)  # on the model's device
        smoothness = (flatten_loss(vertices[:batch], topology) + flatten_loss(vertices[batch:], topology)) / 2
        total = silhouette + self.lambda_smoothness * smoothness if self.lambda_smoothness else silhouette
        return {"loss": total, "silhouette": silhouette, "smoothness": smoothness.detach()}
