// Host side of the four ops, shared by the CPU (rasterize_cpu.cpp) and CUDA (rasterize_cuda.cu)
// extensions: the ops themselves as Python sees them (forward, backward_xy, backward_depth,
// backward_textures), their bindings, and the input checks that turn tensors into the parameter
// structs of rasterizer_math.h. An op checks its inputs, allocates its outputs and hands the
// parameters to its backend's launcher; each backend defines the four launch_* functions below.
// Both backends therefore accept and reject the same inputs with the same messages; only the
// device type (the template argument) differs.
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
                        at::IntArrayRef shape) {
  TORCH_CHECK(t.device() == faces.device(), name, " must be on ", faces.device(), " like faces, got ", t.device());
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

// The body of each backend's PYBIND11_MODULE: define_ops<at::kCPU>(m) or define_ops<at::kCUDA>(m).
template <c10::DeviceType kDevice>
void define_ops(pybind11::module& m) {
  m.def("forward", &forward<kDevice>, "rasterize: face index, weights, depth, rgb, alpha");
  m.def("backward_xy", &backward_xy<kDevice>, "approximate gradient of rgb/alpha with respect to x, y");
  m.def("backward_depth", &backward_depth<kDevice>, "exact gradient of depth");
  m.def("backward_textures", &backward_textures<kDevice>, "gradient of rgb with respect to the texture cubes and the light");
}

}  // namespace meshopt
