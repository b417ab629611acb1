// CPU kernels of the meshopt rasterizer (multi-threaded with at::parallel_for).
//
// forward:  faces are binned into square tiles; each tile z-buffers its own faces in increasing
//           face order (so equal depths keep the lower index), then samples textures.
// backward: the approximate gradient walks scan lines per face (each face owns its gradient, no
//           atomics); the walks read line buffers laid out so that a walk is contiguous.
// mip_pyramid: each level from the previous one, rows in parallel (its backward coarse to fine).
// shade_uv: the UV path's colours, pixels in parallel; its backward one serial pass.
// Shared with the CUDA kernels: all per-face/per-pixel math, the parameter structs and the dense
// pixel runs are in rasterizer_math.h; the op signatures, bindings and input checks in
// rasterizer_ops.h. This file holds only the CPU scheduling: tile binning, per-face pixel lists,
// the per-line lists of the OUT walk and its vectorised loop (walk_out).
#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "rasterizer_math.h"
#include "rasterizer_ops.h"

using meshopt::Crossing;
using meshopt::Face;
using meshopt::ScanEdge;

namespace {

constexpr int kTile = 16;

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

// One batch item's image: each tile z-buffers the faces binned to it in increasing order.
template <bool kRgb>
void rasterize_item(const meshopt::ForwardParams& p, int64_t b) {
  const int S = p.S;
  const FaceSet set = load_faces(p.faces + b * p.F * 9, p.F, S);
  const Bins bins = bin_faces(set, S);
  const int n = bins.tiles_per_side;
  at::parallel_for(0, (int64_t)n * n, 1, [&](int64_t begin, int64_t end) {
    meshopt::Nearest best[kTile * kTile];
    for (int64_t tile = begin; tile < end; ++tile) {
      const int tx0 = (int)(tile % n) * kTile, ty0 = (int)(tile / n) * kTile;
      const int tw = std::min(kTile, S - tx0), th = std::min(kTile, S - ty0);
      for (int i = 0; i < kTile * kTile; ++i) best[i].reset(p.far);
      for (int64_t k = bins.start[tile]; k < bins.start[tile + 1]; ++k) {
        const int f = bins.faces[k];
        const Face& face = set.faces[f];
        const int x0 = std::max(set.x_first[f], tx0), x1 = std::min(set.x_first[f] + set.x_count[f], tx0 + tw);
        const int y0 = std::max(set.y_first[f], ty0), y1 = std::min(set.y_first[f] + set.y_count[f], ty0 + th);
        for (int y = y0; y < y1; ++y)
          for (int x = x0; x < x1; ++x)
            best[(y - ty0) * kTile + (x - tx0)].offer(face, f, (float)x, (float)y, p.near, p.far);
      }
      for (int y = ty0; y < ty0 + th; ++y)
        for (int x = tx0; x < tx0 + tw; ++x) meshopt::write_pixel<kRgb>(p, b, x, y, best[(y - ty0) * kTile + (x - tx0)]);
    }
  });
}

}  // namespace

void meshopt::launch_forward(const ForwardParams& p, bool need_rgb, const at::TensorOptions&) {
  for (int64_t b = 0; b < p.B; ++b) {
    if (need_rgb)
      rasterize_item<true>(p, b);
    else
      rasterize_item<false>(p, b);
  }
}

namespace {

// Covered pixels grouped by face (CSR over b * F + f) so that per-face sums need no atomics.
struct PixelsByFace {
  std::vector<int64_t> start;  // [B * F + 1]
  std::vector<int64_t> pixel;  // flat pixel index b * S * S + y * S + x
};

// face_index [B, S, S]; pixels whose face is not in [0, F) are left out (as on CUDA).
PixelsByFace group_pixels(const int32_t* fi, int64_t B, int64_t S, int64_t F) {
  const int64_t SS = S * S;
  PixelsByFace groups;
  groups.start.assign(B * F + 1, 0);
  for (int64_t p = 0; p < B * SS; ++p)
    if (fi[p] >= 0 && fi[p] < F) groups.start[(p / SS) * F + fi[p] + 1]++;
  for (size_t k = 1; k < groups.start.size(); ++k) groups.start[k] += groups.start[k - 1];
  groups.pixel.resize(groups.start.back());
  std::vector<int64_t> cursor(groups.start.begin(), groups.start.end() - 1);
  for (int64_t p = 0; p < B * SS; ++p)
    if (fi[p] >= 0 && fi[p] < F) groups.pixel[cursor[(p / SS) * F + fi[p]]++] = p;
  return groups;
}

}  // namespace

// One task per face: its 9 sums over its own pixels.
void meshopt::launch_backward_depth(const DepthGradientParams& p, const at::TensorOptions&) {
  const PixelsByFace groups = group_pixels(p.face_index, p.B, p.S, p.F);
  const int S = p.S;
  at::parallel_for(0, p.B * p.F, 256, [&](int64_t begin, int64_t end) {
    for (int64_t bf = begin; bf < end; ++bf) {
      if (groups.start[bf] == groups.start[bf + 1]) continue;
      const Face face = meshopt::load_face(p.faces + 9 * bf, S);
      float g9[9] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
      for (int64_t k = groups.start[bf]; k < groups.start[bf + 1]; ++k) {
        const int64_t pixel = groups.pixel[k];
        const float qx = (float)(pixel % S), qy = (float)((pixel / S) % S);
        meshopt::add_depth_gradient(face, qx, qy, p.grad_depth[pixel], S, g9);
      }
      for (int k = 0; k < 9; ++k) p.grad_faces[9 * bf + k] = g9[k];
    }
  });
}

// One task per cube (zeroed by that task), covering every rasterized face that reads it: the face
// and, with fill_back, its reversed copy.
void meshopt::launch_backward_textures(const TextureGradientParams& p, const at::TensorOptions&) {
  const PixelsByFace groups = group_pixels(p.face_index, p.B, p.S, p.F);
  const int64_t Ft = p.cubes.count, cube = p.cubes.floats();
  const auto add = [](float* target, float value) { *target += value; };  // this task owns the cube
  at::parallel_for(0, p.B * Ft, 256, [&](int64_t begin, int64_t end) {
    for (int64_t bs = begin; bs < end; ++bs) {
      const int64_t b = bs / Ft, source = bs % Ft;
      if (p.grad_textures != nullptr) std::fill(p.grad_textures + bs * cube, p.grad_textures + (bs + 1) * cube, 0.f);
      for (int copy = 0; copy < (p.cubes.fill_back ? 2 : 1); ++copy) {
        const int64_t f = source + copy * Ft, bf = b * p.F + f;
        float grad_light_f[3] = {0.f, 0.f, 0.f};
        for (int64_t k = groups.start[bf]; k < groups.start[bf + 1]; ++k) {
          float grad_light_pixel[3];
          meshopt::texture_gradient_pixel(p, b, f, groups.pixel[k], add, grad_light_pixel);
          for (int ch = 0; ch < 3; ++ch) grad_light_f[ch] += grad_light_pixel[ch];
        }
        if (p.grad_light != nullptr)
          for (int ch = 0; ch < 3; ++ch) p.grad_light[3 * bf + ch] = grad_light_f[ch];
      }
    }
  });
}

namespace {

// One axis's per-line lists of the pixels an OUT walk can gain from (meshopt::OutLines has the
// layout and the rule), owned here and reused by the next backward pass of the same thread.
struct SparseLines {
  int S, C;
  std::vector<int32_t> count;  // [lines]
  std::vector<float> pos;      // [lines][S]
  std::vector<float> data;     // [lines][C + 1][S]
};

struct LineSet {
  SparseLines any_gradient[2];  // per axis: 0 = columns, 1 = rows
  SparseLines alpha_gain[2];    // C = 1 only
};

void reset_lines(int64_t B, int S, int C, SparseLines& out) {
  out.S = S;
  out.C = C;
  out.count.assign(B * S, 0);
  // grown, never shrunk: the buffers are reused by the next backward pass of this thread
  if (out.pos.size() < (size_t)(B * S * S)) out.pos.resize(B * S * (int64_t)S);
  if (out.data.size() < (size_t)(B * S * S * (C + 1))) out.data.resize(B * S * (int64_t)S * (C + 1));
}

// Entry n of row line `row` of `rows` appended to column line `column` (position: the row).
void append_to_column(const SparseLines& rows, int64_t row_line, int n, int row, int64_t column_line,
                      SparseLines& columns) {
  const int S = rows.S, C = rows.C;
  const int m = columns.count[column_line]++;
  columns.pos[column_line * S + m] = (float)row;
  const float* from = rows.data.data() + row_line * S * (C + 1);
  float* to = columns.data.data() + column_line * S * (C + 1);
  for (int k = 0; k <= C; ++k) to[k * S + m] = from[k * S + n];
}

// Pixel (I, G) at position v of line `line`: appended to `any` when it has a gradient, and to
// `gain` too (C = 1 lists; null otherwise) when it gains where the inside pixel has alpha 1.
inline void keep_pixel(const float* I, const float* G, int C, int S, int64_t line, int v, SparseLines& any,
                       SparseLines* gain) {
  if (!meshopt::out_candidate(I, G, C, false)) return;
  meshopt::out_store(I, G, C, S, any.count[line]++, (float)v, any.pos.data() + line * S,
                     any.data.data() + line * S * (C + 1));
  if (gain != nullptr && meshopt::out_candidate(I, G, C, true))
    meshopt::out_store(I, G, C, S, gain->count[line]++, (float)v, gain->pos.data() + line * S,
                       gain->data.data() + line * S * (C + 1));
}

// Every list of `lines` in two passes, with the entries (and their order) that a separate walk of
// the image per axis and kind would give. 1: one dense pass over the pixels, rows in parallel,
// fills the row lists (axis 1) of both kinds. 2: the column lists (axis 0). When fewer than one
// pixel in 8 carries a gradient they are copied from the row lists, whose entries are the only
// pixels a column list can hold, walking the rows in increasing order so that each column's
// positions increase: then only pass 1 reads the whole image. Otherwise the image is walked again.
void build_lines(const float* image, const float* grad, int64_t B, int S, int C, LineSet& lines) {
  const bool alpha_gain = C == 1;
  for (int axis = 0; axis < 2; ++axis) {
    reset_lines(B, S, C, lines.any_gradient[axis]);
    if (alpha_gain) reset_lines(B, S, C, lines.alpha_gain[axis]);
  }
  SparseLines& any_rows = lines.any_gradient[1];
  SparseLines& gain_rows = lines.alpha_gain[1];
  at::parallel_for(0, B * S, 16, [&](int64_t begin, int64_t end) {
    for (int64_t line = begin; line < end; ++line) {
      const int64_t first_pixel = line * S;
      for (int v = 0; v < S; ++v) {
        keep_pixel(image + (first_pixel + v) * C, grad + (first_pixel + v) * C, C, S, line, v, any_rows,
                   alpha_gain ? &gain_rows : nullptr);
      }
    }
  });
  // pass 2, few pixels with a gradient: copy the row lists' entries into the column lists
  // (batch items in parallel); many: walk the image again by blocks of columns, which reads and
  // writes memory in order (copying scatters every entry to another line)
  int64_t kept = 0;
  for (int64_t line = 0; line < B * S; ++line) kept += any_rows.count[line];
  if (kept * 8 < B * S * (int64_t)S) {
    at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
      for (int64_t b = begin; b < end; ++b)
        for (int row = 0; row < S; ++row) {
          const int64_t row_line = b * S + row;
          for (int n = 0; n < any_rows.count[row_line]; ++n)
            append_to_column(any_rows, row_line, n, row, b * S + (int)any_rows.pos[row_line * S + n],
                             lines.any_gradient[0]);
          if (alpha_gain)
            for (int n = 0; n < gain_rows.count[row_line]; ++n)
              append_to_column(gain_rows, row_line, n, row, b * S + (int)gain_rows.pos[row_line * S + n],
                               lines.alpha_gain[0]);
        }
    });
    return;
  }
  SparseLines& any_columns = lines.any_gradient[0];
  SparseLines& gain_columns = lines.alpha_gain[0];
  constexpr int kBlock = 16;
  const int blocks = (S + kBlock - 1) / kBlock;
  at::parallel_for(0, B * blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / blocks;
      const int first_column = (int)(task % blocks) * kBlock, last_column = std::min(first_column + kBlock, S);
      for (int row = 0; row < S; ++row)
        for (int column = first_column; column < last_column; ++column) {
          const int64_t pixel = (b * S + row) * S + column, line = b * S + column;
          keep_pixel(image + pixel * C, grad + pixel * C, C, S, line, row, any_columns,
                     alpha_gain ? &gain_columns : nullptr);
        }
    }
  });
}

// meshopt::add_out_run for one walker, as one vectorised loop: the sum over the kept pixels k in
// [first, last) of a line, delta = sum_c I_c G_c - sum_c ref_c G_c where positive. The hot loop of
// the backward pass.
template <int C>
void walk_out(const float* pos, const float* data, int S, int first, int last, const float* ref, const Crossing& c,
              int direction, float eps, float& sum_a, float& sum_b) {
  const float k_a = c.k_a, k_b = c.k_b, v_x = c.v_x;
  const float eps_a = meshopt::out_eps(k_a, direction, eps), eps_b = meshopt::out_eps(k_b, direction, eps);
  float acc_a = 0.f, acc_b = 0.f;
#pragma omp simd reduction(+ : acc_a, acc_b)
  for (int k = first; k < last; ++k) {
    float ref_dot_grad = 0.f;
    for (int ch = 0; ch < C; ++ch) ref_dot_grad += ref[ch] * data[(1 + ch) * S + k];
    float value_a, value_b;
    meshopt::out_terms(pos[k], data[k], ref_dot_grad, k_a, k_b, v_x, eps_a, eps_b, value_a, value_b);
    acc_a += value_a;
    acc_b += value_b;
  }
  sum_a += acc_a;
  sum_b += acc_b;
}

struct BackwardInputs {
  meshopt::XyGradientParams p;
  const LineSet* lines;
};

template <int C>
void face_gradient(const Face& face, int32_t f, int64_t b, const BackwardInputs& in, float g9[9]) {
  const int S = in.p.S;
  for (int edge = 0; edge < 3; ++edge)
    for (int axis = 0; axis < 2; ++axis) {
      ScanEdge e;
      if (!meshopt::scan_edge(face, edge, axis, e)) continue;
      int u_first, u_count;
      meshopt::edge_lines(e, S, u_first, u_count);
      float grad_a = 0.f, grad_b = 0.f;
      for (int u0 = u_first; u0 < u_first + u_count; ++u0) {
        Crossing c;
        if (!meshopt::cross(e, u0, S, c)) continue;
        const meshopt::ScanLine scan = meshopt::scan_line(b, u0, axis, S);
        const int64_t pixel_in = scan.pixel(c.v_in);
        float sum_a = 0.f, sum_b = 0.f;
        // OUT: the face grows over the pixels beyond the edge, up to the image border (over the
        // pixels that can contribute only)
        if (in.p.face_index[pixel_in] == f) {
          const float* ref = in.p.image + pixel_in * C;
          const bool alpha_gain = C == 1 && ref[0] == 1.f;
          const SparseLines& lines = alpha_gain ? in.lines->alpha_gain[axis] : in.lines->any_gradient[axis];
          const int64_t line = b * S + u0;
          const float* pos = lines.pos.data() + line * S;
          int first, last;
          meshopt::out_range(pos, lines.count[line], c.v_out, e.direction, first, last);
          walk_out<C>(pos, lines.data.data() + line * S * (C + 1), S, first, last, ref, c, e.direction, in.p.eps,
                      sum_a, sum_b);
        }
        // IN: the face shrinks and uncovers its own pixels, up to its opposite side
        meshopt::add_in_run<C>(in.p, f, e, c, scan, 0, 1, sum_a, sum_b);
        if (c.has_a) grad_a += sum_a;
        if (c.has_b) grad_b += sum_b;
      }
      g9[3 * e.a + e.v_axis] += grad_a;
      g9[3 * e.b + e.v_axis] += grad_b;
    }
}

template <int C>
void backward_xy_impl(const BackwardInputs& in) {
  const meshopt::XyGradientParams& p = in.p;
  at::parallel_for(0, p.B * p.F, 64, [&](int64_t begin, int64_t end) {
    for (int64_t bf = begin; bf < end; ++bf) {
      const Face face = meshopt::load_face(p.faces + 9 * bf, p.S);
      if (!face.valid) continue;
      float g9[9] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
      face_gradient<C>(face, (int32_t)(bf % p.F), bf / p.F, in, g9);
      for (int k = 0; k < 9; ++k) p.grad_faces[9 * bf + k] = g9[k];
    }
  });
}

}  // namespace

void meshopt::launch_backward_xy(const XyGradientParams& p, const at::TensorOptions&) {
  // Kept per calling thread: allocating (and page-faulting) tens of MB on every call costs more
  // than the lists themselves at large image sizes.
  thread_local LineSet lines;
  build_lines(p.image, p.grad_image, p.B, p.S, p.C, lines);
  const BackwardInputs in{p, &lines};
  if (p.C == 1)
    backward_xy_impl<1>(in);
  else if (p.C == 3)
    backward_xy_impl<3>(in);
  else
    backward_xy_impl<4>(in);
}

// The pyramid: level 0 copied, then each level from the one before, rows in parallel.
void meshopt::launch_mip_pyramid(const MipParams& p, const at::TensorOptions&) {
  const MipLevels& L = p.levels;
  const int64_t texels0 = (int64_t)L.h[0] * L.w[0];
  for (int64_t i = 0; i < p.images; ++i)
    std::copy(p.image + 3 * i * texels0, p.image + 3 * (i + 1) * texels0, p.packed + 3 * i * L.total);
  for (int l = 0; l + 1 < L.count; ++l) {
    const int h = L.h[l + 1], w = L.w[l + 1];
    at::parallel_for(0, p.images * h, std::max<int64_t>(1, 4096 / w), [&](int64_t begin, int64_t end) {
      for (int64_t row = begin; row < end; ++row)
        for (int x = 0; x < w; ++x) meshopt::mip_down_texel(p, row / h, l, (int)(row % h), x);
    });
  }
}

// Its backward: coarse to fine, each level's texels gain their parent's gradient (rows in parallel;
// a texel has one parent, so no two rows write the same place).
void meshopt::launch_mip_pyramid_backward(const MipParams& p, const at::TensorOptions&) {
  const MipLevels& L = p.levels;
  for (int l = L.count - 2; l >= 0; --l) {
    const int h = L.h[l], w = L.w[l];
    at::parallel_for(0, p.images * h, std::max<int64_t>(1, 4096 / w), [&](int64_t begin, int64_t end) {
      for (int64_t row = begin; row < end; ++row)
        for (int x = 0; x < w; ++x) meshopt::mip_up_texel(p, row / h, l, (int)(row % h), x);
    });
  }
}

// UV shading: pixels in parallel (each writes only its own colour).
void meshopt::launch_shade_uv(const UVShadeParams& p, const at::TensorOptions&) {
  at::parallel_for(0, p.B * p.S * p.S, 2048, [&](int64_t begin, int64_t end) {
    for (int64_t pixel = begin; pixel < end; ++pixel) meshopt::uv_shade_pixel(p, pixel);
  });
}

// Its backward scatters into texels, corner UVs and lights that many pixels share: one pass in
// pixel order (a few ms for a 512^2 frame; deterministic, unlike the atomics of the CUDA version).
void meshopt::launch_shade_uv_backward(const UVShadeParams& p, const at::TensorOptions&) {
  const auto add = [](float* target, float value) { *target += value; };
  const int64_t pixels = p.B * p.S * p.S;
  for (int64_t pixel = 0; pixel < pixels; ++pixel) meshopt::uv_shade_pixel_backward(p, pixel, add);
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) { meshopt::define_ops<at::kCPU>(m); }
