// CPU kernels of the meshopt rasterizer (multi-threaded with at::parallel_for).
//
// forward:  faces are binned into square tiles; each tile z-buffers its own faces in increasing
//           face order (so equal depths keep the lower index), then samples textures.
// backward: the approximate gradient walks scan lines per face (each face owns its gradient, no
//           atomics); the walks read line buffers laid out so that a walk is contiguous.
// The per-face/per-pixel math lives in rasterizer_math.h, shared with the CUDA kernels.
#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "rasterizer_math.h"

using meshopt::Crossing;
using meshopt::Face;
using meshopt::ScanEdge;

namespace {

constexpr int kTile = 16;

void check_faces(const at::Tensor& faces) {
  TORCH_CHECK(faces.device().is_cpu(), "faces must be a CPU tensor");
  TORCH_CHECK(faces.scalar_type() == at::kFloat, "faces must be float32");
  TORCH_CHECK(faces.dim() == 3 && faces.size(2) == 9, "faces must have shape [B, F, 9]");
  TORCH_CHECK(faces.is_contiguous(), "faces must be contiguous");
}

// Faces of one batch item in pixel units, and the pixel box of each valid one.
struct FaceSet {
  std::vector<Face> faces;
  std::vector<int> x_first, x_count, y_first, y_count;
};

FaceSet load_faces(const float* faces9, int64_t num_faces, int S) {
  FaceSet set;
  set.faces.resize(num_faces);
  set.x_first.resize(num_faces);
  set.x_count.resize(num_faces);
  set.y_first.resize(num_faces);
  set.y_count.resize(num_faces);
  at::parallel_for(0, num_faces, 1024, [&](int64_t begin, int64_t end) {
    for (int64_t f = begin; f < end; ++f) {
      set.faces[f] = meshopt::load_face(faces9 + 9 * f, S);
      meshopt::face_bounds(set.faces[f], S, set.x_first[f], set.x_count[f], set.y_first[f], set.y_count[f]);
      if (!set.faces[f].valid) set.x_count[f] = set.y_count[f] = 0;
    }
  });
  return set;
}

// Per-tile face lists (CSR), faces in increasing order within each tile.
struct Bins {
  int tiles_per_side;
  std::vector<int64_t> start;  // [tiles + 1]
  std::vector<int32_t> faces;
};

Bins bin_faces(const FaceSet& set, int S) {
  Bins bins;
  const int n = (S + kTile - 1) / kTile;
  bins.tiles_per_side = n;
  bins.start.assign((size_t)n * n + 1, 0);
  const int64_t num_faces = (int64_t)set.faces.size();
  for (int pass = 0; pass < 2; ++pass) {
    std::vector<int64_t> cursor;
    if (pass == 1) {
      for (size_t t = 1; t < bins.start.size(); ++t) bins.start[t] += bins.start[t - 1];
      bins.faces.resize(bins.start.back());
      cursor.assign(bins.start.begin(), bins.start.end() - 1);
    }
    for (int64_t f = 0; f < num_faces; ++f) {
      if (set.x_count[f] == 0 || set.y_count[f] == 0) continue;
      const int tx0 = set.x_first[f] / kTile, tx1 = (set.x_first[f] + set.x_count[f] - 1) / kTile;
      const int ty0 = set.y_first[f] / kTile, ty1 = (set.y_first[f] + set.y_count[f] - 1) / kTile;
      for (int ty = ty0; ty <= ty1; ++ty)
        for (int tx = tx0; tx <= tx1; ++tx) {
          const int64_t tile = (int64_t)ty * n + tx;
          if (pass == 0)
            bins.start[tile + 1]++;
          else
            bins.faces[cursor[tile]++] = (int32_t)f;
        }
    }
  }
  return bins;
}

}  // namespace

std::vector<at::Tensor> forward(at::Tensor faces, at::Tensor textures, int64_t image_size, double near, double far,
                                double eps, at::Tensor background, bool need_rgb) {
  check_faces(faces);
  const int S = (int)image_size;
  const int64_t B = faces.size(0), F = faces.size(1);
  const int T = need_rgb ? (int)textures.size(2) : 0;
  if (need_rgb) {
    TORCH_CHECK(textures.scalar_type() == at::kFloat && textures.is_contiguous(), "textures must be contiguous float32");
    TORCH_CHECK(textures.dim() == 6 && textures.size(0) == B && textures.size(1) == F, "textures must be [B, F, T, T, T, 3]");
  }
  auto opts = faces.options();
  auto face_index = at::full({B, S, S}, -1, opts.dtype(at::kInt));
  auto weights = at::zeros({B, S, S, 3}, opts);
  auto depth = at::full({B, S, S}, far, opts);
  auto alpha = at::zeros({B, S, S}, opts);
  auto rgb = need_rgb ? at::empty({B, S, S, 3}, opts) : at::empty({0}, opts);
  auto bg = background.contiguous();

  const float near_f = (float)near, far_f = (float)far;
  const float upper = (float)(T - 1) - (float)eps;
  int32_t* fi_p = face_index.data_ptr<int32_t>();
  float* w_p = weights.data_ptr<float>();
  float* d_p = depth.data_ptr<float>();
  float* a_p = alpha.data_ptr<float>();
  float* rgb_p = need_rgb ? rgb.data_ptr<float>() : nullptr;
  const float* tex_p = need_rgb ? textures.data_ptr<float>() : nullptr;
  const float* bg_p = bg.data_ptr<float>();
  const int64_t cube = (int64_t)T * T * T * 3;

  for (int64_t b = 0; b < B; ++b) {
    const FaceSet set = load_faces(faces.data_ptr<float>() + b * F * 9, F, S);
    const Bins bins = bin_faces(set, S);
    const int n = bins.tiles_per_side;
    at::parallel_for(0, (int64_t)n * n, 1, [&](int64_t begin, int64_t end) {
      float best_depth[kTile * kTile];
      int32_t best_face[kTile * kTile];
      float best_w[kTile * kTile][3];
      for (int64_t tile = begin; tile < end; ++tile) {
        const int tx0 = (int)(tile % n) * kTile, ty0 = (int)(tile / n) * kTile;
        const int tw = std::min(kTile, S - tx0), th = std::min(kTile, S - ty0);
        for (int i = 0; i < kTile * kTile; ++i) {
          best_depth[i] = far_f;
          best_face[i] = -1;
        }
        for (int64_t k = bins.start[tile]; k < bins.start[tile + 1]; ++k) {
          const int f = bins.faces[k];
          const Face& face = set.faces[f];
          const int x0 = std::max(set.x_first[f], tx0), x1 = std::min(set.x_first[f] + set.x_count[f], tx0 + tw);
          const int y0 = std::max(set.y_first[f], ty0), y1 = std::min(set.y_first[f] + set.y_count[f], ty0 + th);
          for (int y = y0; y < y1; ++y)
            for (int x = x0; x < x1; ++x) {
              float w[3], z;
              if (!meshopt::shade_pixel(face, (float)x, (float)y, near_f, far_f, w, z)) continue;
              const int local = (y - ty0) * kTile + (x - tx0);
              if (z < best_depth[local]) {
                best_depth[local] = z;
                best_face[local] = f;
                best_w[local][0] = w[0];
                best_w[local][1] = w[1];
                best_w[local][2] = w[2];
              }
            }
        }
        for (int y = ty0; y < ty0 + th; ++y)
          for (int x = tx0; x < tx0 + tw; ++x) {
            const int local = (y - ty0) * kTile + (x - tx0);
            const int64_t p = (b * S + y) * S + x;
            const int f = best_face[local];
            if (need_rgb) {
              float* out = rgb_p + 3 * p;
              out[0] = bg_p[3 * b];
              out[1] = bg_p[3 * b + 1];
              out[2] = bg_p[3 * b + 2];
            }
            if (f < 0) continue;
            fi_p[p] = f;
            d_p[p] = best_depth[local];
            a_p[p] = 1.f;
            for (int k = 0; k < 3; ++k) w_p[3 * p + k] = best_w[local][k];
            if (need_rgb) {
              int index[8];
              float corner_weight[8];
              meshopt::texture_corners(best_w[local], best_depth[local], set.faces[f].z, T, upper, index, corner_weight);
              const float* texture = tex_p + (b * F + f) * cube;
              float color[3] = {0.f, 0.f, 0.f};
              for (int c = 0; c < 8; ++c)
                for (int k = 0; k < 3; ++k) color[k] += corner_weight[c] * texture[3 * index[c] + k];
              for (int k = 0; k < 3; ++k) rgb_p[3 * p + k] = color[k];
            }
          }
      }
    });
  }
  return {face_index, weights, depth, rgb, alpha};
}

namespace {

// Covered pixels grouped by face (CSR over b * F + f) so that per-face sums need no atomics.
struct PixelsByFace {
  std::vector<int64_t> start;  // [B * F + 1]
  std::vector<int64_t> pixel;  // flat pixel index b * S * S + y * S + x
};

PixelsByFace group_pixels(const at::Tensor& face_index, int64_t F) {
  const int64_t B = face_index.size(0), SS = face_index.size(1) * face_index.size(2);
  const int32_t* fi = face_index.data_ptr<int32_t>();
  PixelsByFace groups;
  groups.start.assign(B * F + 1, 0);
  for (int64_t p = 0; p < B * SS; ++p)
    if (fi[p] >= 0) groups.start[(p / SS) * F + fi[p] + 1]++;
  for (size_t k = 1; k < groups.start.size(); ++k) groups.start[k] += groups.start[k - 1];
  groups.pixel.resize(groups.start.back());
  std::vector<int64_t> cursor(groups.start.begin(), groups.start.end() - 1);
  for (int64_t p = 0; p < B * SS; ++p)
    if (fi[p] >= 0) groups.pixel[cursor[(p / SS) * F + fi[p]]++] = p;
  return groups;
}

}  // namespace

at::Tensor backward_depth(at::Tensor faces, at::Tensor face_index, at::Tensor grad_depth) {
  check_faces(faces);
  const int64_t B = faces.size(0), F = faces.size(1);
  const int S = (int)face_index.size(1);
  auto grad_faces = at::zeros_like(faces);
  const PixelsByFace groups = group_pixels(face_index, F);
  const float* faces_p = faces.data_ptr<float>();
  const float* gd = grad_depth.data_ptr<float>();
  float* out = grad_faces.data_ptr<float>();
  at::parallel_for(0, B * F, 256, [&](int64_t begin, int64_t end) {
    for (int64_t bf = begin; bf < end; ++bf) {
      if (groups.start[bf] == groups.start[bf + 1]) continue;
      const Face face = meshopt::load_face(faces_p + 9 * bf, S);
      float g9[9] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
      for (int64_t k = groups.start[bf]; k < groups.start[bf + 1]; ++k) {
        const int64_t p = groups.pixel[k];
        const float qx = (float)(p % S), qy = (float)((p / S) % S);
        meshopt::add_depth_gradient(face, qx, qy, gd[p], S, g9);
      }
      for (int k = 0; k < 9; ++k) out[9 * bf + k] = g9[k];
    }
  });
  return grad_faces;
}

at::Tensor backward_textures(at::Tensor faces, at::Tensor face_index, at::Tensor weights, at::Tensor depth,
                             at::Tensor grad_rgb, int64_t texture_size, double eps) {
  check_faces(faces);
  const int64_t B = faces.size(0), F = faces.size(1);
  const int S = (int)face_index.size(1);
  const int T = (int)texture_size;
  const int64_t cube = (int64_t)T * T * T * 3;
  auto grad_textures = at::zeros({B, F, T, T, T, 3}, faces.options());
  const PixelsByFace groups = group_pixels(face_index, F);
  const float* faces_p = faces.data_ptr<float>();
  const float* w_p = weights.data_ptr<float>();
  const float* d_p = depth.data_ptr<float>();
  const float* g_p = grad_rgb.data_ptr<float>();
  float* out = grad_textures.data_ptr<float>();
  const float upper = (float)(T - 1) - (float)eps;
  at::parallel_for(0, B * F, 256, [&](int64_t begin, int64_t end) {
    for (int64_t bf = begin; bf < end; ++bf) {
      if (groups.start[bf] == groups.start[bf + 1]) continue;
      const float* f9 = faces_p + 9 * bf;
      const float z[3] = {f9[2], f9[5], f9[8]};
      float* grad_cube = out + bf * cube;
      for (int64_t k = groups.start[bf]; k < groups.start[bf + 1]; ++k) {
        const int64_t p = groups.pixel[k];
        int index[8];
        float corner_weight[8];
        meshopt::texture_corners(w_p + 3 * p, d_p[p], z, T, upper, index, corner_weight);
        for (int c = 0; c < 8; ++c)
          for (int ch = 0; ch < 3; ++ch) grad_cube[3 * index[c] + ch] += corner_weight[c] * g_p[3 * p + ch];
      }
    }
  });
  return grad_textures;
}

namespace {

// Image and gradient channels as lines: lines[axis][(b * S + u) * 2C * S + channel * S + v] holds
// channel `channel` (image channels first, then gradient channels) of the pixel at scan line u,
// position v. Axis 0 lines are columns, axis 1 lines are rows, so every walk reads contiguously.
struct LineBuffers {
  std::vector<float> lines[2];
  std::vector<int32_t> face[2];  // face index, same layout with one channel
};

LineBuffers make_lines(const float* image, const float* grad, const int32_t* face_index, int64_t B, int S, int C) {
  LineBuffers buf;
  const int64_t stride = 2 * C * (int64_t)S;
  for (int axis = 0; axis < 2; ++axis) {
    buf.lines[axis].resize(B * S * stride);
    buf.face[axis].resize(B * S * S);
  }
  at::parallel_for(0, B * S, 16, [&](int64_t begin, int64_t end) {
    for (int64_t bu = begin; bu < end; ++bu) {
      const int64_t b = bu / S, u = bu % S;
      for (int v = 0; v < S; ++v) {
        const int64_t row_pixel = (b * S + u) * S + v;  // row u, column v (axis 1)
        const int64_t col_pixel = (b * S + v) * S + u;  // column u, row v (axis 0)
        for (int c = 0; c < C; ++c) {
          buf.lines[1][bu * stride + c * S + v] = image[row_pixel * C + c];
          buf.lines[1][bu * stride + (C + c) * S + v] = grad[row_pixel * C + c];
          buf.lines[0][bu * stride + c * S + v] = image[col_pixel * C + c];
          buf.lines[0][bu * stride + (C + c) * S + v] = grad[col_pixel * C + c];
        }
        buf.face[1][bu * S + v] = face_index[row_pixel];
        buf.face[0][bu * S + v] = face_index[col_pixel];
      }
    }
  });
  return buf;
}

// Sum over pixels v in [first, last] of the contributions of delta(v) = sum_c (I_c(v) - ref_c) G_c(v),
// where positive, to vertices a and b. The hot loop of the backward pass.
template <int C>
void walk_out(const float* line, int S, int first, int last, const float* ref, const Crossing& c, float eps, float& sum_a,
              float& sum_b) {
  float acc_a = 0.f, acc_b = 0.f;
  const float k_a = c.k_a, k_b = c.k_b, v_x = c.v_x;
#pragma omp simd reduction(+ : acc_a, acc_b)
  for (int v = first; v <= last; ++v) {
    float delta = 0.f;
    for (int ch = 0; ch < C; ++ch) delta += (line[ch * S + v] - ref[ch]) * line[(C + ch) * S + v];
    delta = delta > 0.f ? delta : 0.f;
    const float offset = (float)v - v_x;
    acc_a += meshopt::contribution(delta, k_a, offset, S, eps);
    acc_b += meshopt::contribution(delta, k_b, offset, S, eps);
  }
  sum_a += acc_a;
  sum_b += acc_b;
}

template <int C>
void face_gradient(const Face& face, int32_t f, int64_t b, int S, const LineBuffers& buf, float eps, float g9[9]) {
  const int64_t stride = 2 * C * (int64_t)S;
  for (int edge = 0; edge < 3; ++edge)
    for (int axis = 0; axis < 2; ++axis) {
      ScanEdge e;
      if (!meshopt::scan_edge(face, edge, axis, e)) continue;
      int u_first, u_count;
      meshopt::pixel_range(fminf(e.ua, e.ub), fmaxf(e.ua, e.ub), S, u_first, u_count);
      float grad_a = 0.f, grad_b = 0.f;
      for (int u0 = u_first; u0 < u_first + u_count; ++u0) {
        Crossing c;
        if (!meshopt::cross(e, u0, S, c)) continue;
        const float* line = buf.lines[axis].data() + (b * S + u0) * stride;
        const int32_t* faces_on_line = buf.face[axis].data() + (b * S + u0) * S;
        float sum_a = 0.f, sum_b = 0.f;
        // OUT: the face grows over the pixels beyond the edge, up to the image border
        if (faces_on_line[c.v_in] == f) {
          float ref[C];
          for (int ch = 0; ch < C; ++ch) ref[ch] = line[ch * S + c.v_in];
          const int first = e.direction > 0 ? c.v_out : 0, last = e.direction > 0 ? S - 1 : c.v_out;
          walk_out<C>(line, S, first, last, ref, c, eps, sum_a, sum_b);
        }
        // IN: the face shrinks and uncovers its own pixels, up to its opposite side
        int in_first, in_count;
        meshopt::inner_range(e, c, S, in_first, in_count);
        float ref_out[C];
        for (int ch = 0; ch < C; ++ch) ref_out[ch] = line[ch * S + c.v_out];
        for (int v = in_first; v < in_first + in_count; ++v) {
          if (faces_on_line[v] != f) continue;
          float delta = 0.f;
          for (int ch = 0; ch < C; ++ch) delta += (line[ch * S + v] - ref_out[ch]) * line[(C + ch) * S + v];
          if (!(delta > 0.f)) continue;
          const float offset = (float)v - c.v_x;
          sum_a += meshopt::contribution(delta, c.k_a, offset, S, eps);
          sum_b += meshopt::contribution(delta, c.k_b, offset, S, eps);
        }
        if (c.has_a) grad_a += sum_a;
        if (c.has_b) grad_b += sum_b;
      }
      g9[3 * e.a + e.v_axis] += grad_a;
      g9[3 * e.b + e.v_axis] += grad_b;
    }
}

template <int C>
void backward_xy_impl(const at::Tensor& faces, const LineBuffers& buf, int S, float eps, at::Tensor& grad_faces) {
  const int64_t B = faces.size(0), F = faces.size(1);
  const float* faces_p = faces.data_ptr<float>();
  float* out = grad_faces.data_ptr<float>();
  at::parallel_for(0, B * F, 64, [&](int64_t begin, int64_t end) {
    for (int64_t bf = begin; bf < end; ++bf) {
      const Face face = meshopt::load_face(faces_p + 9 * bf, S);
      if (!face.valid) continue;
      float g9[9] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
      face_gradient<C>(face, (int32_t)(bf % F), bf / F, S, buf, eps, g9);
      for (int k = 0; k < 9; ++k) out[9 * bf + k] = g9[k];
    }
  });
}

}  // namespace

at::Tensor backward_xy(at::Tensor faces, at::Tensor face_index, at::Tensor image, at::Tensor grad_image, double eps) {
  check_faces(faces);
  const int64_t B = faces.size(0);
  const int S = (int)face_index.size(1);
  const int C = (int)image.size(3);
  TORCH_CHECK(C == 1 || C == 3 || C == 4, "image must have 1, 3 or 4 channels");
  TORCH_CHECK(image.is_contiguous() && grad_image.is_contiguous() && face_index.is_contiguous(), "inputs must be contiguous");
  auto grad_faces = at::zeros_like(faces);
  const LineBuffers buf = make_lines(image.data_ptr<float>(), grad_image.data_ptr<float>(), face_index.data_ptr<int32_t>(), B, S, C);
  if (C == 1)
    backward_xy_impl<1>(faces, buf, S, (float)eps, grad_faces);
  else if (C == 3)
    backward_xy_impl<3>(faces, buf, S, (float)eps, grad_faces);
  else
    backward_xy_impl<4>(faces, buf, S, (float)eps, grad_faces);
  return grad_faces;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward, "rasterize: face index, weights, depth, rgb, alpha");
  m.def("backward_xy", &backward_xy, "approximate gradient of rgb/alpha with respect to x, y");
  m.def("backward_depth", &backward_depth, "exact gradient of depth");
  m.def("backward_textures", &backward_textures, "gradient of rgb with respect to the texture cubes");
}
