// Host side of the eight ops, shared by the CPU (rasterize_cpu.cpp) and CUDA (rasterize_cuda.cu)
// extensions: the ops themselves as Python sees them (forward, backward_xy, backward_depth,
// backward_textures; mip_pyramid, shade_uv and their backward ops for UV texture images), their
// bindings, and the input checks that turn tensors into the parameter structs of
// rasterizer_math.h. An op checks its inputs, allocates its outputs and hands the parameters to
// its backend's launcher; each backend defines the eight launch_* functions below. Both backends
// therefore accept and reject the same inputs with the same messages; only the device type (the
// template argument) differs.
#pragma once

#include <torch/extension.h>

#include <vector>

#include "rasterizer_math.h"

namespace meshopt {

// ----------------------------------------------------------------------------- per backend
// Run the kernels of one op on checked parameters. Outputs the ops zero: grad_faces, grad_light;
// every other output is uninitialised and the launcher must write all of it. `options`: those of
// faces (float32 on its device), for the device guard and temporaries.
void launch_forward(const ForwardParams& p, bool need_rgb, const at::TensorOptions& options);
void launch_backward_xy(const XyGradientParams& p, const at::TensorOptions& options);
void launch_backward_depth(const DepthGradientParams& p, const at::TensorOptions& options);
void launch_backward_textures(const TextureGradientParams& p, const at::TensorOptions& options);
void launch_mip_pyramid(const MipParams& p, const at::TensorOptions& options);
void launch_mip_pyramid_backward(const MipParams& p, const at::TensorOptions& options);
void launch_shade_uv(const UVShadeParams& p, const at::TensorOptions& options);
void launch_shade_uv_backward(const UVShadeParams& p, const at::TensorOptions& options);

// ----------------------------------------------------------------------------- checks

// faces: a contiguous float32 [B, F, 9] tensor on a `device` device.
inline void check_faces(const at::Tensor& faces, c10::DeviceType device) {
  TORCH_CHECK(faces.device().type() == device, "faces must be a ", c10::DeviceTypeName(device), " tensor, got ",
              faces.device());
  TORCH_CHECK(faces.scalar_type() == at::kFloat, "faces must be float32, got ", faces.scalar_type());
  TORCH_CHECK(faces.dim() == 3 && faces.size(2) == 9, "faces must have shape [B, F, 9], got ", faces.sizes());
  TORCH_CHECK(faces.is_contiguous(), "faces must be contiguous");
}

// `t` is a contiguous tensor of `dtype` on the device of `faces`, of shape `shape`.
inline void check_input(const at::Tensor& t, const char* name, const at::Tensor& faces, at::ScalarType dtype,
                        at::IntArrayRef shape, const char* like = "faces") {
  TORCH_CHECK(t.device() == faces.device(), name, " must be on ", faces.device(), " like ", like, ", got ", t.device());
  TORCH_CHECK(t.scalar_type() == dtype, name, " must be ", dtype, ", got ", t.scalar_type());
  TORCH_CHECK(t.sizes() == shape, name, " must have shape ", shape, ", got ", t.sizes());
  TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
}

// face_index: int32 [B, S, S]; returns S.
inline int64_t check_face_index(const at::Tensor& face_index, const at::Tensor& faces) {
  TORCH_CHECK(face_index.dim() == 3, "face_index must be [B, S, S], got ", face_index.sizes());
  const int64_t S = face_index.size(1);
  check_input(face_index, "face_index", faces, at::kInt, {faces.size(0), S, S});
  return S;
}

// textures [B, Ft, T, T, T, 3] with Ft = F (F / 2 with fill_back), light [B, F, 3] or empty.
inline void check_textures(const at::Tensor& textures, const at::Tensor& light, const at::Tensor& faces,
                           bool fill_back) {
  const int64_t B = faces.size(0), F = faces.size(1);
  TORCH_CHECK(textures.dim() == 6 && textures.size(0) == B && textures.size(1) * (fill_back ? 2 : 1) == F &&
                  textures.size(2) >= 1 && textures.size(3) == textures.size(2) &&
                  textures.size(4) == textures.size(2) && textures.size(5) == 3,
              "textures must be [B, F, T, T, T, 3] ([B, F / 2, ...] with fill_back), got ", textures.sizes());
  check_input(textures, "textures", faces, at::kFloat, textures.sizes());
  if (light.numel()) {
    check_input(light, "light", faces, at::kFloat, light.sizes());
    TORCH_CHECK(light.numel() == B * F * 3, "light must be [B, F, 3], got ", light.sizes());
  }
}

inline Cubes cubes_of(const at::Tensor& textures, bool fill_back) {
  Cubes cubes;
  cubes.count = textures.size(1);
  cubes.fill_back = fill_back;
  cubes.T = (int)textures.size(2);
  return cubes;
}

// ----------------------------------------------------------------------------- parameters of each op
// Checked inputs and sizes; the caller allocates the outputs and sets their pointers.

inline ForwardParams forward_params(const at::Tensor& faces, const at::Tensor& textures, int64_t image_size,
                                    double near, double far, double eps, const at::Tensor& background,
                                    const at::Tensor& light, bool fill_back, bool need_rgb, c10::DeviceType device) {
  check_faces(faces, device);
  TORCH_CHECK(image_size > 0, "image_size must be positive, got ", image_size);
  if (need_rgb) check_textures(textures, light, faces, fill_back);
  check_input(background, "background", faces, at::kFloat, {faces.size(0), 3});
  ForwardParams p{};
  p.faces = faces.data_ptr<float>();
  p.textures = need_rgb ? textures.data_ptr<float>() : nullptr;
  p.light = need_rgb && light.numel() ? light.data_ptr<float>() : nullptr;
  p.background = background.data_ptr<float>();
  p.B = faces.size(0);
  p.F = faces.size(1);
  if (need_rgb)
    p.cubes = cubes_of(textures, fill_back);
  else
    p.cubes = Cubes{p.F, fill_back, 0};
  p.S = (int)image_size;
  p.near = (float)near;
  p.far = (float)far;
  p.upper = (float)(p.cubes.T - 1) - (float)eps;
  return p;
}

inline DepthGradientParams backward_depth_params(const at::Tensor& faces, const at::Tensor& face_index,
                                                 const at::Tensor& grad_depth, c10::DeviceType device) {
  check_faces(faces, device);
  const int64_t S = check_face_index(face_index, faces);
  check_input(grad_depth, "grad_depth", faces, at::kFloat, {faces.size(0), S, S});
  DepthGradientParams p{};
  p.faces = faces.data_ptr<float>();
  p.face_index = face_index.data_ptr<int32_t>();
  p.grad_depth = grad_depth.data_ptr<float>();
  p.B = faces.size(0);
  p.F = faces.size(1);
  p.S = (int)S;
  return p;
}

inline TextureGradientParams backward_textures_params(const at::Tensor& faces, const at::Tensor& face_index,
                                                      const at::Tensor& weights, const at::Tensor& depth,
                                                      const at::Tensor& grad_rgb, const at::Tensor& textures,
                                                      const at::Tensor& light, bool fill_back, double eps,
                                                      c10::DeviceType device) {
  check_faces(faces, device);
  check_textures(textures, light, faces, fill_back);
  const int64_t B = faces.size(0), S = check_face_index(face_index, faces);
  check_input(weights, "weights", faces, at::kFloat, {B, S, S, 3});
  check_input(depth, "depth", faces, at::kFloat, {B, S, S});
  check_input(grad_rgb, "grad_rgb", faces, at::kFloat, {B, S, S, 3});
  TextureGradientParams p{};
  p.faces = faces.data_ptr<float>();
  p.face_index = face_index.data_ptr<int32_t>();
  p.weights = weights.data_ptr<float>();
  p.depth = depth.data_ptr<float>();
  p.grad_rgb = grad_rgb.data_ptr<float>();
  p.textures = textures.data_ptr<float>();
  p.light = light.numel() ? light.data_ptr<float>() : nullptr;
  p.B = B;
  p.F = faces.size(1);
  p.cubes = cubes_of(textures, fill_back);
  p.S = (int)S;
  p.upper = (float)(p.cubes.T - 1) - (float)eps;
  return p;
}

inline XyGradientParams backward_xy_params(const at::Tensor& faces, const at::Tensor& face_index,
                                           const at::Tensor& image, const at::Tensor& grad_image, double eps,
                                           c10::DeviceType device) {
  check_faces(faces, device);
  const int64_t B = faces.size(0), S = check_face_index(face_index, faces);
  TORCH_CHECK(image.dim() == 4, "image must be [B, S, S, C], got ", image.sizes());
  const int64_t C = image.size(3);
  TORCH_CHECK(C == 1 || C == 3 || C == 4, "image must have 1, 3 or 4 channels, got ", C);
  check_input(image, "image", faces, at::kFloat, {B, S, S, C});
  check_input(grad_image, "grad_image", faces, at::kFloat, {B, S, S, C});
  XyGradientParams p{};
  p.faces = faces.data_ptr<float>();
  p.face_index = face_index.data_ptr<int32_t>();
  p.image = image.data_ptr<float>();
  p.grad_image = grad_image.data_ptr<float>();
  p.B = B;
  p.F = faces.size(1);
  p.S = (int)S;
  p.C = (int)C;
  p.eps = (float)eps;
  return p;
}

// The level table (height, width, offset per level) as uv.mip_levels lists it, checked.
inline MipLevels mip_levels_of(const std::vector<int64_t>& levels) {
  TORCH_CHECK(!levels.empty() && levels.size() % 3 == 0 && levels.size() / 3 <= kMaxMipLevels,
              "levels must list (height, width, offset) of 1 to ", kMaxMipLevels, " mip levels");
  MipLevels table{};
  table.count = (int)(levels.size() / 3);
  int64_t total = 0;
  for (int l = 0; l < table.count; ++l) {
    table.h[l] = (int)levels[3 * l];
    table.w[l] = (int)levels[3 * l + 1];
    table.offset[l] = levels[3 * l + 2];
    TORCH_CHECK(table.h[l] > 0 && table.w[l] > 0 && table.offset[l] == total,
                "levels must be packed in order with positive sizes");
    if (l > 0)
      TORCH_CHECK(table.h[l] == (table.h[l - 1] + 1) / 2 && table.w[l] == (table.w[l - 1] + 1) / 2,
                  "each mip level must halve the previous one (ceil)");
    total += (int64_t)table.h[l] * table.w[l];
  }
  table.total = total;
  return table;
}

// The UV path's inputs (uv.py's NativeShade): the screen-space faces and the rasterizer's maps, the
// corner UVs, the packed pyramid with its level table (h, w, offset per level), light and
// background.
inline UVShadeParams shade_uv_params(const at::Tensor& faces, const at::Tensor& face_index, const at::Tensor& weights,
                                     const at::Tensor& depth, const at::Tensor& uvs, const at::Tensor& pyramid,
                                     const std::vector<int64_t>& levels, const at::Tensor& light,
                                     const at::Tensor& background, int64_t wrap, c10::DeviceType device) {
  check_faces(faces, device);
  const int64_t B = faces.size(0), F = faces.size(1), S = check_face_index(face_index, faces);
  TORCH_CHECK(uvs.dim() == 4 && (uvs.size(0) == 1 || uvs.size(0) == B), "uvs must be [B or 1, F, 3, 2], got ",
              uvs.sizes());
  TORCH_CHECK(pyramid.dim() == 2, "pyramid must be [images * texels, 3], got ", pyramid.sizes());
  TORCH_CHECK(wrap >= kRepeat && wrap <= kClampToBorder, "wrap must be 0..3, got ", wrap);
  check_input(weights, "weights", faces, at::kFloat, {B, S, S, 3});
  check_input(depth, "depth", faces, at::kFloat, {B, S, S});
  check_input(uvs, "uvs", faces, at::kFloat, {uvs.size(0), F, 3, 2});
  check_input(background, "background", faces, at::kFloat, {B, 3});
  if (light.numel()) check_input(light, "light", faces, at::kFloat, {B, F, 3});
  UVShadeParams p{};
  p.levels = mip_levels_of(levels);
  const int64_t total = p.levels.total;
  TORCH_CHECK(pyramid.size(0) == total || pyramid.size(0) == B * total, "pyramid must hold ", total, " or ", B * total,
              " texels (one or B images), got ", pyramid.size(0));
  check_input(pyramid, "pyramid", faces, at::kFloat, {pyramid.size(0), 3});
  p.faces = faces.data_ptr<float>();
  p.face_index = face_index.data_ptr<int32_t>();
  p.weights = weights.data_ptr<float>();
  p.depth = depth.data_ptr<float>();
  p.uvs = uvs.data_ptr<float>();
  p.pyramid = pyramid.data_ptr<float>();
  p.light = light.numel() ? light.data_ptr<float>() : nullptr;
  p.background = background.data_ptr<float>();
  p.B = B;
  p.F = F;
  p.S = (int)S;
  p.uvs_batched = uvs.size(0) == B && B > 1;
  p.image_batched = pyramid.size(0) == B * total && B > 1;
  p.wrap = (int)wrap;
  return p;
}

// ----------------------------------------------------------------------------- the ops

template <c10::DeviceType kDevice>
std::vector<at::Tensor> forward(at::Tensor faces, at::Tensor textures, int64_t image_size, double near, double far,
                                double eps, at::Tensor background, at::Tensor light, bool fill_back, bool need_rgb) {
  ForwardParams p =
      forward_params(faces, textures, image_size, near, far, eps, background, light, fill_back, need_rgb, kDevice);
  const auto opts = faces.options();
  const int64_t B = p.B, S = p.S;
  auto face_index = at::empty({B, S, S}, opts.dtype(at::kInt));
  auto weights = at::empty({B, S, S, 3}, opts);
  auto depth = at::empty({B, S, S}, opts);
  auto rgb = need_rgb ? at::empty({B, S, S, 3}, opts) : at::empty({0}, opts);
  auto alpha = at::empty({B, S, S}, opts);
  p.face_index = face_index.data_ptr<int32_t>();
  p.weights = weights.data_ptr<float>();
  p.depth = depth.data_ptr<float>();
  p.rgb = need_rgb ? rgb.data_ptr<float>() : nullptr;
  p.alpha = alpha.data_ptr<float>();
  launch_forward(p, need_rgb, opts);
  return {face_index, weights, depth, rgb, alpha};
}

template <c10::DeviceType kDevice>
at::Tensor backward_xy(at::Tensor faces, at::Tensor face_index, at::Tensor image, at::Tensor grad_image, double eps) {
  XyGradientParams p = backward_xy_params(faces, face_index, image, grad_image, eps, kDevice);
  auto grad_faces = at::zeros_like(faces);
  p.grad_faces = grad_faces.data_ptr<float>();
  launch_backward_xy(p, faces.options());
  return grad_faces;
}

template <c10::DeviceType kDevice>
at::Tensor backward_depth(at::Tensor faces, at::Tensor face_index, at::Tensor grad_depth) {
  DepthGradientParams p = backward_depth_params(faces, face_index, grad_depth, kDevice);
  auto grad_faces = at::zeros_like(faces);
  p.grad_faces = grad_faces.data_ptr<float>();
  launch_backward_depth(p, faces.options());
  return grad_faces;
}

// need_textures false: only the light's gradient is computed (grad_textures comes back empty).
template <c10::DeviceType kDevice>
std::vector<at::Tensor> backward_textures(at::Tensor faces, at::Tensor face_index, at::Tensor weights, at::Tensor depth,
                                          at::Tensor grad_rgb, at::Tensor textures, at::Tensor light, bool fill_back,
                                          double eps, bool need_textures) {
  TextureGradientParams p = backward_textures_params(faces, face_index, weights, depth, grad_rgb, textures, light,
                                                     fill_back, eps, kDevice);
  // the launcher zeroes grad_textures
  auto grad_textures = need_textures ? at::empty_like(textures) : at::empty({0}, faces.options());
  auto grad_light = p.light ? at::zeros({p.B, p.F, 3}, faces.options()) : at::empty({0}, faces.options());
  p.grad_textures = need_textures ? grad_textures.data_ptr<float>() : nullptr;
  p.grad_light = p.light ? grad_light.data_ptr<float>() : nullptr;
  launch_backward_textures(p, faces.options());
  return {grad_textures, grad_light};
}

// image [Bi, H, W, 3] -> its pyramid packed [Bi * total, 3] (levels: uv.mip_levels(H, W)).
template <c10::DeviceType kDevice>
at::Tensor mip_pyramid(at::Tensor image, std::vector<int64_t> levels) {
  TORCH_CHECK(image.device().type() == kDevice, "image must be a ", c10::DeviceTypeName(kDevice), " tensor, got ",
              image.device());
  TORCH_CHECK(image.dim() == 4 && image.size(3) == 3, "image must be [B, H, W, 3], got ", image.sizes());
  check_input(image, "image", image, at::kFloat, image.sizes(), "itself");
  MipParams p{};
  p.levels = mip_levels_of(levels);
  TORCH_CHECK(image.size(1) == p.levels.h[0] && image.size(2) == p.levels.w[0], "levels do not start at the image's size");
  p.images = image.size(0);
  auto packed = at::empty({p.images * p.levels.total, 3}, image.options());
  p.image = image.data_ptr<float>();
  p.packed = packed.data_ptr<float>();
  launch_mip_pyramid(p, image.options());
  return packed;
}

// grad_packed [Bi * total, 3] -> the image's gradient [Bi, H, W, 3] through every level's pooling,
// computed in place: grad_packed is overwritten (the caller's temporary; this saves a copy of the
// whole pyramid) and the result is a view of its level 0 when Bi = 1.
template <c10::DeviceType kDevice>
at::Tensor mip_pyramid_backward_(at::Tensor grad_packed, std::vector<int64_t> levels, int64_t images) {
  TORCH_CHECK(grad_packed.device().type() == kDevice, "grad_packed must be a ", c10::DeviceTypeName(kDevice),
              " tensor, got ", grad_packed.device());
  MipParams p{};
  p.levels = mip_levels_of(levels);
  p.images = images;
  check_input(grad_packed, "grad_packed", grad_packed, at::kFloat, {images * p.levels.total, 3}, "itself");
  p.grad = grad_packed.data_ptr<float>();
  launch_mip_pyramid_backward(p, grad_packed.options());
  return grad_packed.view({images, p.levels.total, 3})
      .narrow(1, 0, (int64_t)p.levels.h[0] * p.levels.w[0])
      .reshape({images, p.levels.h[0], p.levels.w[0], 3});
}

template <c10::DeviceType kDevice>
at::Tensor shade_uv(at::Tensor faces, at::Tensor face_index, at::Tensor weights, at::Tensor depth, at::Tensor uvs,
                    at::Tensor pyramid, std::vector<int64_t> levels, at::Tensor light, at::Tensor background,
                    int64_t wrap) {
  UVShadeParams p =
      shade_uv_params(faces, face_index, weights, depth, uvs, pyramid, levels, light, background, wrap, kDevice);
  auto rgb = at::empty({p.B, p.S, p.S, 3}, weights.options());
  p.rgb = rgb.data_ptr<float>();
  launch_shade_uv(p, weights.options());
  return rgb;
}

// grad_pyramid, grad_uvs (each empty unless asked for) and grad_light (empty without light).
template <c10::DeviceType kDevice>
std::vector<at::Tensor> shade_uv_backward(at::Tensor faces, at::Tensor face_index, at::Tensor weights,
                                          at::Tensor depth, at::Tensor uvs, at::Tensor pyramid,
                                          std::vector<int64_t> levels, at::Tensor light, at::Tensor background,
                                          int64_t wrap, at::Tensor grad_rgb, bool need_pyramid, bool need_uvs) {
  UVShadeParams p =
      shade_uv_params(faces, face_index, weights, depth, uvs, pyramid, levels, light, background, wrap, kDevice);
  check_input(grad_rgb, "grad_rgb", faces, at::kFloat, {p.B, p.S, p.S, 3});
  const auto opts = weights.options();
  auto grad_pyramid = need_pyramid ? at::zeros_like(pyramid) : at::empty({0}, opts);
  auto grad_uvs = need_uvs ? at::zeros_like(uvs) : at::empty({0}, opts);
  auto grad_light = p.light ? at::zeros_like(light) : at::empty({0}, opts);
  p.grad_rgb = grad_rgb.data_ptr<float>();
  p.grad_pyramid = need_pyramid ? grad_pyramid.data_ptr<float>() : nullptr;
  p.grad_uvs = need_uvs ? grad_uvs.data_ptr<float>() : nullptr;
  p.grad_light = p.light ? grad_light.data_ptr<float>() : nullptr;
  launch_shade_uv_backward(p, opts);
  return {grad_pyramid, grad_uvs, grad_light};
}

// The body of each backend's PYBIND11_MODULE: define_ops<at::kCPU>(m) or define_ops<at::kCUDA>(m).
template <c10::DeviceType kDevice>
void define_ops(pybind11::module& m) {
  m.def("forward", &forward<kDevice>, "rasterize: face index, weights, depth, rgb, alpha");
  m.def("backward_xy", &backward_xy<kDevice>, "approximate gradient of rgb/alpha with respect to x, y");
  m.def("backward_depth", &backward_depth<kDevice>, "exact gradient of depth");
  m.def("backward_textures", &backward_textures<kDevice>, "gradient of rgb with respect to the texture cubes and the light");
  m.def("mip_pyramid", &mip_pyramid<kDevice>, "a texture image's mip pyramid, packed (2x2 box averages)");
  m.def("mip_pyramid_backward_", &mip_pyramid_backward_<kDevice>, "gradient of mip_pyramid for the image (in place)");
  m.def("shade_uv", &shade_uv<kDevice>, "rgb of UV-textured faces from the rasterizer's maps (mip-mapped reads)");
  m.def("shade_uv_backward", &shade_uv_backward<kDevice>, "gradient of shade_uv for the pyramid, the UVs and the light");
}

}  // namespace meshopt
