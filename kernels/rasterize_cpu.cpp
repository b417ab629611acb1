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
#include <memory>
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

// Faces of fill-back renders: faces [Ft, 2 Ft) are reversed copies reading cube f - Ft transposed.
struct CubeOf {
  int64_t Ft;
  bool fill_back;
  int64_t source(int64_t f) const { return fill_back && f >= Ft ? f - Ft : f; }
  bool reversed(int64_t f) const { return fill_back && f >= Ft; }
};

void check_textures(const at::Tensor& textures, const at::Tensor& light, int64_t B, int64_t F, bool fill_back) {
  TORCH_CHECK(textures.scalar_type() == at::kFloat && textures.is_contiguous(), "textures must be contiguous float32");
  TORCH_CHECK(textures.dim() == 6 && textures.size(0) == B && textures.size(1) * (fill_back ? 2 : 1) == F,
              "textures must be [B, F, T, T, T, 3] ([B, F / 2, ...] with fill_back)");
  if (light.numel())
    TORCH_CHECK(light.scalar_type() == at::kFloat && light.is_contiguous() && light.numel() == B * F * 3,
                "light must be contiguous float32 [B, F, 3]");
}

std::vector<at::Tensor> forward(at::Tensor faces, at::Tensor textures, int64_t image_size, double near, double far,
                                double eps, at::Tensor background, at::Tensor light, bool fill_back, bool need_rgb) {
  check_faces(faces);
  const int S = (int)image_size;
  const int64_t B = faces.size(0), F = faces.size(1);
  const int T = need_rgb ? (int)textures.size(2) : 0;
  if (need_rgb) check_textures(textures, light, B, F, fill_back);
  const CubeOf cube_of{need_rgb ? textures.size(1) : F, fill_back};
  const float* light_p = need_rgb && light.numel() ? light.data_ptr<float>() : nullptr;
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
              meshopt::texture_corners(best_w[local], best_depth[local], set.faces[f].z, T, upper, index, corner_weight,
                                       cube_of.reversed(f));
              const float* texture = tex_p + (b * cube_of.Ft + cube_of.source(f)) * cube;
              float color[3] = {0.f, 0.f, 0.f};
              for (int c = 0; c < 8; ++c)
                for (int k = 0; k < 3; ++k) color[k] += corner_weight[c] * texture[3 * index[c] + k];
              if (light_p)
                for (int k = 0; k < 3; ++k) color[k] = light_p[(b * F + f) * 3 + k] * color[k];
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

std::vector<at::Tensor> backward_textures(at::Tensor faces, at::Tensor face_index, at::Tensor weights, at::Tensor depth,
                                          at::Tensor grad_rgb, at::Tensor textures, at::Tensor light, bool fill_back,
                                          double eps) {
  check_faces(faces);
  const int64_t B = faces.size(0), F = faces.size(1);
  check_textures(textures, light, B, F, fill_back);
  const int S = (int)face_index.size(1);
  const int T = (int)textures.size(2);
  const CubeOf cube_of{textures.size(1), fill_back};
  const int64_t Ft = cube_of.Ft, cube = (int64_t)T * T * T * 3;
  const bool has_light = light.numel() > 0;
  auto grad_textures = at::empty_like(textures);  // every cube is zeroed by the task that owns it
  auto grad_light = has_light ? at::zeros({B, F, 3}, faces.options()) : at::empty({0}, faces.options());
  const PixelsByFace groups = group_pixels(face_index, F);
  const float* faces_p = faces.data_ptr<float>();
  const float* w_p = weights.data_ptr<float>();
  const float* d_p = depth.data_ptr<float>();
  const float* g_p = grad_rgb.data_ptr<float>();
  const float* tex_p = textures.data_ptr<float>();
  const float* light_p = has_light ? light.data_ptr<float>() : nullptr;
  float* out = grad_textures.data_ptr<float>();
  float* out_light = has_light ? grad_light.data_ptr<float>() : nullptr;
  const float upper = (float)(T - 1) - (float)eps;
  // one task per cube, covering every rasterized face that reads it (the face and its reversed copy)
  at::parallel_for(0, B * Ft, 256, [&](int64_t begin, int64_t end) {
    for (int64_t bs = begin; bs < end; ++bs) {
      const int64_t b = bs / Ft, source = bs % Ft;
      const float* texture = tex_p + bs * cube;
      float* grad_cube = out + bs * cube;
      std::fill(grad_cube, grad_cube + cube, 0.f);
      for (int copy = 0; copy < (fill_back ? 2 : 1); ++copy) {
        const int64_t f = source + copy * Ft, bf = b * F + f;
        const float* f9 = faces_p + 9 * bf;
        const float z[3] = {f9[2], f9[5], f9[8]};
        float light_f[3] = {1.f, 1.f, 1.f}, grad_light_f[3] = {0.f, 0.f, 0.f};
        if (has_light)
          for (int ch = 0; ch < 3; ++ch) light_f[ch] = light_p[3 * bf + ch];
        for (int64_t k = groups.start[bf]; k < groups.start[bf + 1]; ++k) {
          const int64_t p = groups.pixel[k];
          int index[8];
          float corner_weight[8];
          meshopt::texture_corners(w_p + 3 * p, d_p[p], z, T, upper, index, corner_weight, cube_of.reversed(f));
          float color[3] = {0.f, 0.f, 0.f};
          for (int c = 0; c < 8; ++c)
            for (int ch = 0; ch < 3; ++ch) {
              grad_cube[3 * index[c] + ch] += corner_weight[c] * (g_p[3 * p + ch] * light_f[ch]);
              color[ch] += corner_weight[c] * texture[3 * index[c] + ch];
            }
          for (int ch = 0; ch < 3; ++ch) grad_light_f[ch] += g_p[3 * p + ch] * color[ch];
        }
        if (has_light)
          for (int ch = 0; ch < 3; ++ch) out_light[3 * bf + ch] = grad_light_f[ch];
      }
    }
  });
  return {grad_textures, grad_light};
}

namespace {

// The pixels an OUT walk can gain from, per scan line, in increasing position. A pixel whose
// gradient is zero in every channel contributes nothing, so it is left out; silhouettes (C = 1)
// also keep a list of the only pixels that can contribute when the inside pixel has alpha 1
// (always the case for the rasterizer's own alpha): (alpha - 1) G > 0. Losses that leave most of
// the image alone (silhouette IoU near convergence, MSE on unchanged background) then walk only
// the few pixels that matter instead of the whole line.
struct SparseLines {
  int S, C;
  std::vector<int32_t> count;  // [lines]
  std::vector<float> pos;      // [lines][S] positions v of the kept pixels (meaningful up to count)
  std::vector<float> data;     // [lines][C + 1][S]: sum_c I_c G_c, then the gradient channels G_c
};

struct LineSet {
  SparseLines any_gradient[2];  // per axis: 0 = columns, 1 = rows
  SparseLines alpha_gain[2];    // C = 1 only
};

void build_lines(const float* image, const float* grad, int64_t B, int S, int C, int axis, bool alpha_gain,
                 SparseLines& out) {
  out.S = S;
  out.C = C;
  out.count.assign(B * S, 0);
  // grown, never shrunk: the buffers are reused by the next backward pass of this thread
  if (out.pos.size() < (size_t)(B * S * S)) out.pos.resize(B * S * (int64_t)S);
  if (out.data.size() < (size_t)(B * S * S * (C + 1))) out.data.resize(B * S * (int64_t)S * (C + 1));
  // Lines are filled a block at a time while reading the image row by row, so that columns
  // (axis 0) are gathered from contiguous memory too.
  constexpr int kBlock = 16;
  const int blocks = (S + kBlock - 1) / kBlock;
  at::parallel_for(0, B * blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / blocks;
      const int first_line = (int)(task % blocks) * kBlock, last_line = std::min(first_line + kBlock, S);
      // axis 1: the block's lines are rows, scanned one by one; axis 0: the block's lines are
      // columns, filled together while walking down the rows
      const int outer = axis == 1 ? last_line - first_line : S;
      const int inner = axis == 1 ? S : last_line - first_line;
      for (int i = 0; i < outer; ++i)
        for (int j = 0; j < inner; ++j) {
          const int u = axis == 1 ? first_line + i : first_line + j;  // the line
          const int v = axis == 1 ? j : i;                            // the position along it
          const int64_t pixel = axis == 1 ? (b * S + u) * S + v : (b * S + v) * S + u;
          const float* I = image + pixel * C;
          const float* G = grad + pixel * C;
          bool keep = false;
          if (alpha_gain)
            keep = (I[0] - 1.f) * G[0] > 0.f;
          else
            for (int ch = 0; ch < C; ++ch) keep = keep || G[ch] != 0.f;
          if (!keep) continue;
          const int64_t line = b * S + u;
          const int n = out.count[line]++;
          out.pos[line * S + n] = (float)v;
          float* data = out.data.data() + line * S * (C + 1);
          float image_dot_grad = 0.f;
          for (int ch = 0; ch < C; ++ch) {
            image_dot_grad += I[ch] * G[ch];
            data[(1 + ch) * S + n] = G[ch];
          }
          data[n] = image_dot_grad;
        }
    }
  });
}

// Sum of the contributions of the kept pixels k in [first, last) of a line to vertices a and b, with
// delta = sum_c (I_c - ref_c) G_c = sum_c I_c G_c - sum_c ref_c G_c where positive. The hot loop of
// the backward pass.
template <int C>
void walk_out(const float* pos, const float* data, int S, int first, int last, const float* ref, const Crossing& c,
              int direction, float eps, float& sum_a, float& sum_b) {
  // Along an OUT walk the offset v - v_x never changes sign (it has the walk's direction), so the
  // side that eps is added on is fixed per vertex; one reciprocal serves both vertices. Same values
  // as meshopt::contribution up to rounding.
  const float k_a = c.k_a, k_b = c.k_b, v_x = c.v_x;
  const float eps_a = (k_a > 0.f) == (direction > 0) && k_a != 0.f ? eps : -eps;
  const float eps_b = (k_b > 0.f) == (direction > 0) && k_b != 0.f ? eps : -eps;
  float acc_a = 0.f, acc_b = 0.f;
#pragma omp simd reduction(+ : acc_a, acc_b)
  for (int k = first; k < last; ++k) {
    float ref_dot_grad = 0.f;
    for (int ch = 0; ch < C; ++ch) ref_dot_grad += ref[ch] * data[(1 + ch) * S + k];
    float delta = data[k] - ref_dot_grad;
    delta = delta > 0.f ? delta : 0.f;
    const float offset = pos[k] - v_x;
    const float distance_a = k_a * offset + eps_a, distance_b = k_b * offset + eps_b;
    const float scale = -delta / (distance_a * distance_b);
    const float value_a = scale * distance_b, value_b = scale * distance_a;
    acc_a += meshopt::is_finite(value_a) ? value_a : 0.f;
    acc_b += meshopt::is_finite(value_b) ? value_b : 0.f;
  }
  sum_a += acc_a;
  sum_b += acc_b;
}

struct BackwardInputs {
  const float* image;
  const float* grad;
  const int32_t* face_index;
  const LineSet* lines;
  int S;
  float eps;
};

template <int C>
void face_gradient(const Face& face, int32_t f, int64_t b, const BackwardInputs& in, float g9[9]) {
  const int S = in.S;
  for (int edge = 0; edge < 3; ++edge)
    for (int axis = 0; axis < 2; ++axis) {
      ScanEdge e;
      if (!meshopt::scan_edge(face, edge, axis, e)) continue;
      int u_first, u_count;
      meshopt::pixel_range(fminf(e.ua, e.ub), fmaxf(e.ua, e.ub), S, u_first, u_count);
      // pixel (u0, v) of this axis: axis 0 -> row v, column u0; axis 1 -> row u0, column v
      const int64_t u_stride = axis == 0 ? 1 : S, v_stride = axis == 0 ? S : 1;
      float grad_a = 0.f, grad_b = 0.f;
      for (int u0 = u_first; u0 < u_first + u_count; ++u0) {
        Crossing c;
        if (!meshopt::cross(e, u0, S, c)) continue;
        const int64_t line_origin = b * S * S + u0 * u_stride;
        const int64_t pixel_in = line_origin + c.v_in * v_stride, pixel_out = line_origin + c.v_out * v_stride;
        float sum_a = 0.f, sum_b = 0.f;
        // OUT: the face grows over the pixels beyond the edge, up to the image border
        if (in.face_index[pixel_in] == f) {
          const float* ref = in.image + pixel_in * C;
          const bool alpha_gain = C == 1 && ref[0] == 1.f;
          const SparseLines& lines = alpha_gain ? in.lines->alpha_gain[axis] : in.lines->any_gradient[axis];
          const int64_t line = b * S + u0;
          const float* pos = lines.pos.data() + line * S;
          const int n = lines.count[line];
          const float v_out = (float)c.v_out;
          int first, last;
          if (e.direction > 0) {
            first = (int)(std::lower_bound(pos, pos + n, v_out) - pos);
            last = n;
          } else {
            first = 0;
            last = (int)(std::upper_bound(pos, pos + n, v_out) - pos);
          }
          walk_out<C>(pos, lines.data.data() + line * S * (C + 1), S, first, last, ref, c, e.direction, in.eps, sum_a,
                      sum_b);
        }
        // IN: the face shrinks and uncovers its own pixels, up to its opposite side
        int in_first, in_count;
        meshopt::inner_range(e, c, S, in_first, in_count);
        const float* ref_out = in.image + pixel_out * C;
        for (int v = in_first; v < in_first + in_count; ++v) {
          const int64_t pixel = line_origin + v * v_stride;
          if (in.face_index[pixel] != f) continue;
          float delta = 0.f;
          for (int ch = 0; ch < C; ++ch) delta += (in.image[pixel * C + ch] - ref_out[ch]) * in.grad[pixel * C + ch];
          if (!(delta > 0.f)) continue;
          const float offset = (float)v - c.v_x;
          sum_a += meshopt::contribution(delta, c.k_a, offset, in.eps);
          sum_b += meshopt::contribution(delta, c.k_b, offset, in.eps);
        }
        if (c.has_a) grad_a += sum_a;
        if (c.has_b) grad_b += sum_b;
      }
      g9[3 * e.a + e.v_axis] += grad_a;
      g9[3 * e.b + e.v_axis] += grad_b;
    }
}

template <int C>
void backward_xy_impl(const at::Tensor& faces, const BackwardInputs& in, at::Tensor& grad_faces) {
  const int64_t B = faces.size(0), F = faces.size(1);
  const float* faces_p = faces.data_ptr<float>();
  float* out = grad_faces.data_ptr<float>();
  at::parallel_for(0, B * F, 64, [&](int64_t begin, int64_t end) {
    for (int64_t bf = begin; bf < end; ++bf) {
      const Face face = meshopt::load_face(faces_p + 9 * bf, in.S);
      if (!face.valid) continue;
      float g9[9] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
      face_gradient<C>(face, (int32_t)(bf % F), bf / F, in, g9);
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
  // Kept per calling thread: allocating (and page-faulting) tens of MB on every call costs more
  // than the lists themselves at large image sizes.
  thread_local LineSet lines;
  for (int axis = 0; axis < 2; ++axis) {
    build_lines(image.data_ptr<float>(), grad_image.data_ptr<float>(), B, S, C, axis, false, lines.any_gradient[axis]);
    if (C == 1) build_lines(image.data_ptr<float>(), grad_image.data_ptr<float>(), B, S, C, axis, true, lines.alpha_gain[axis]);
  }
  const BackwardInputs in{image.data_ptr<float>(), grad_image.data_ptr<float>(), face_index.data_ptr<int32_t>(), &lines, S,
                          (float)eps};
  if (C == 1)
    backward_xy_impl<1>(faces, in, grad_faces);
  else if (C == 3)
    backward_xy_impl<3>(faces, in, grad_faces);
  else
    backward_xy_impl<4>(faces, in, grad_faces);
  return grad_faces;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward, "rasterize: face index, weights, depth, rgb, alpha");
  m.def("backward_xy", &backward_xy, "approximate gradient of rgb/alpha with respect to x, y");
  m.def("backward_depth", &backward_depth, "exact gradient of depth");
  m.def("backward_textures", &backward_textures, "gradient of rgb with respect to the texture cubes");
}
