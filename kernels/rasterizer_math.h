// Per-face and per-pixel math of the meshopt rasterizer, shared by the CPU (rasterize_cpu.cpp)
// and CUDA (rasterize_cuda.cu) kernels so that the two cannot drift: face setup, coverage and depth,
// texture sampling and its gradient, the depth gradient, the scan-line crossings of the approximate
// gradient and its pixel runs (IN dense, OUT over per-line lists), and the parameter structs the
// kernels take. Everything here is plain C++ (no torch) and __host__ __device__ under nvcc; the host
// side shared by both backends (op signatures, bindings, input checks) is rasterizer_ops.h. The pure-PyTorch oracle,
// meshopt_cli/render/reference.py, performs the same float operations in the same order: keep
// the three in step (and compile without FMA contraction) so that every backend picks the same
// visible face on every pixel.
//
// Frames: faces arrive as 9 floats (x0, y0, z0, x1, y1, z1, x2, y2, z2) with x, y in NDC and z the
// camera depth. Pixel units are p = 0.5 (xy S + S - 1), so pixel (column i, row j) has its centre
// at the integer point (i, j) in the "unflipped frame" (row 0 at y = -1).
#pragma once

#include <cfloat>
#include <cmath>
#include <cstdint>

#ifdef __CUDACC__
#define MESHOPT_HD __host__ __device__ __forceinline__
#else
#define MESHOPT_HD inline
#endif

namespace meshopt {

MESHOPT_HD bool is_finite(float x) { return fabsf(x) <= FLT_MAX; }

MESHOPT_HD float clampf(float x, float lo, float hi) { return fminf(fmaxf(x, lo), hi); }

MESHOPT_HD float to_pixel(float ndc, int S) { return 0.5f * (ndc * S + S - 1); }

// (b - a) x (q - a): positive when q lies left of a -> b.
MESHOPT_HD float edge_function(float ax, float ay, float bx, float by, float qx, float qy) {
  return (bx - ax) * (qy - ay) - (by - ay) * (qx - ax);
}

// One face in pixel units. `valid`: finite and front-facing (counter-clockwise, area > 0).
struct Face {
  float x[3], y[3], z[3];
  float area;
  bool valid;
};

MESHOPT_HD Face load_face(const float* f9, int S) {
  Face face;
  bool finite = true;
  for (int k = 0; k < 3; ++k) {
    finite = finite && is_finite(f9[3 * k]) && is_finite(f9[3 * k + 1]) && is_finite(f9[3 * k + 2]);
    face.x[k] = to_pixel(f9[3 * k], S);
    face.y[k] = to_pixel(f9[3 * k + 1], S);
    face.z[k] = f9[3 * k + 2];
  }
  face.area = edge_function(face.x[0], face.y[0], face.x[1], face.y[1], face.x[2], face.y[2]);
  face.valid = finite && face.area > 0;
  return face;
}

// Integers in [lo, hi] clipped to [0, S - 1]: `first` and `count` (0 when empty or NaN).
MESHOPT_HD void pixel_range(float lo, float hi, int S, int& first, int& count) {
  if (lo != lo || hi != hi) {
    first = 0;
    count = 0;
    return;
  }
  const float first_f = clampf(ceilf(lo), 0.f, (float)S);
  const float last_f = clampf(floorf(hi), -1.f, (float)(S - 1));
  first = (int)first_f;
  count = last_f - first_f + 1 > 0 ? (int)(last_f - first_f + 1) : 0;
}

MESHOPT_HD void face_bounds(const Face& f, int S, int& x_first, int& x_count, int& y_first, int& y_count) {
  pixel_range(fminf(fminf(f.x[0], f.x[1]), f.x[2]), fmaxf(fmaxf(f.x[0], f.x[1]), f.x[2]), S, x_first, x_count);
  pixel_range(fminf(fminf(f.y[0], f.y[1]), f.y[2]), fmaxf(fmaxf(f.y[0], f.y[1]), f.y[2]), S, y_first, y_count);
}

// Coverage, barycentric weights (clamped to [0, 1], renormalised) and perspective-correct depth
// of the pixel centre (qx, qy). True when covered (all edge functions >= 0) and near < z < far.
MESHOPT_HD bool shade_pixel(const Face& f, float qx, float qy, float near, float far, float w[3], float& depth) {
  const float e0 = edge_function(f.x[1], f.y[1], f.x[2], f.y[2], qx, qy);
  const float e1 = edge_function(f.x[2], f.y[2], f.x[0], f.y[0], qx, qy);
  const float e2 = edge_function(f.x[0], f.y[0], f.x[1], f.y[1], qx, qy);
  if (!(e0 >= 0 && e1 >= 0 && e2 >= 0)) return false;
  w[0] = clampf(e0 / f.area, 0.f, 1.f);
  w[1] = clampf(e1 / f.area, 0.f, 1.f);
  w[2] = clampf(e2 / f.area, 0.f, 1.f);
  const float w_sum = w[0] + w[1] + w[2];
  w[0] = w[0] / w_sum;
  w[1] = w[1] / w_sum;
  w[2] = w[2] / w_sum;
  const float inv_depth = w[0] / f.z[0] + w[1] / f.z[1] + w[2] / f.z[2];
  depth = 1.f / inv_depth;
  return depth > near && depth < far;
}

// Trilinear lookup into a T^3 cube: flat sample index and weight of the 8 corners. The corrected
// weight w_k z / z_k times (T - 1) is clamped to [0, upper] with upper = (T - 1) - eps.
// `reversed`: the face is a back-face copy (vertices 2, 1, 0) reading its original's cube, which is
// the original cube transposed (axes k, j, i), so the axis strides run the other way.
MESHOPT_HD void texture_corners(const float w[3], float depth, const float z[3], int T, float upper, int index[8],
                                float weight[8], bool reversed = false) {
  int lo[3], hi[3];
  float frac[3];
  for (int k = 0; k < 3; ++k) {
    float position = w[k] * (float)(T - 1) * (depth / z[k]);
    if (position != position) position = 0.f;  // 0/0 where a vertex sits at depth 0
    position = fmaxf(fminf(position, upper), 0.f);
    const float low = floorf(position);
    frac[k] = position - low;
    lo[k] = (int)low;
    hi[k] = lo[k] + 1 < T - 1 ? lo[k] + 1 : T - 1;
  }
  for (int corner = 0; corner < 8; ++corner) {
    float wt = 1.f;
    int idx = 0;
    for (int k = 0; k < 3; ++k) {
      const bool upper_k = (corner >> k) & 1;
      const int stride = (reversed ? 2 - k : k) == 0 ? T * T : ((reversed ? 2 - k : k) == 1 ? T : 1);
      wt = wt * (upper_k ? frac[k] : 1.f - frac[k]);
      idx += stride * (upper_k ? hi[k] : lo[k]);
    }
    index[corner] = idx;
    weight[corner] = wt;
  }
}

// Exact gradient of the depth at pixel centre (qx, qy) with respect to the face's 9 NDC
// coordinates, times `grad_depth`, added to g9 unless some part of it is not finite (a vertex at
// depth ~0). Differentiates the clamp and renormalisation of shade_pixel (a clamped weight passes
// gradient only while 0 <= raw <= 1).
MESHOPT_HD void add_depth_gradient(const Face& f, float qx, float qy, float grad_depth, int S, float g9_total[9]) {
  float g9[9] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
  float raw[3], w[3];
  for (int j = 0; j < 3; ++j) {
    const int a = (j + 1) % 3, b = (j + 2) % 3;
    raw[j] = edge_function(f.x[a], f.y[a], f.x[b], f.y[b], qx, qy) / f.area;
    w[j] = clampf(raw[j], 0.f, 1.f);
  }
  const float w_sum = w[0] + w[1] + w[2];
  for (int j = 0; j < 3; ++j) w[j] = w[j] / w_sum;
  const float inv_depth = w[0] / f.z[0] + w[1] / f.z[1] + w[2] / f.z[2];
  const float depth = 1.f / inv_depth;
  const float depth2 = depth * depth;

  float g_raw[3];  // d(depth)/d(raw_j) * grad_depth
  float g_raw_dot = 0.f;
  for (int j = 0; j < 3; ++j) {
    g9[3 * j + 2] += grad_depth * depth2 * w[j] / (f.z[j] * f.z[j]);
    const bool passes = raw[j] >= 0.f && raw[j] <= 1.f;
    g_raw[j] = passes ? grad_depth * (-depth2 / w_sum) * (1.f / f.z[j] - inv_depth) : 0.f;
    g_raw_dot += g_raw[j] * raw[j];
  }
  float gx[3] = {0.f, 0.f, 0.f}, gy[3] = {0.f, 0.f, 0.f};
  for (int j = 0; j < 3; ++j) {  // raw_j = E(p_a, p_b, q) / area
    const int a = (j + 1) % 3, b = (j + 2) % 3;
    gx[a] += g_raw[j] * (f.y[b] - qy);
    gy[a] += g_raw[j] * (qx - f.x[b]);
    gx[b] += g_raw[j] * (qy - f.y[a]);
    gy[b] += g_raw[j] * (f.x[a] - qx);
  }
  const float pixels_per_ndc = 0.5f * S;
  for (int m = 0; m < 3; ++m) {  // minus raw-weighted derivative of the area
    const int n1 = (m + 1) % 3, n2 = (m + 2) % 3;
    gx[m] -= g_raw_dot * (f.y[n1] - f.y[n2]);
    gy[m] -= g_raw_dot * (f.x[n2] - f.x[n1]);
    g9[3 * m] += gx[m] / f.area * pixels_per_ndc;
    g9[3 * m + 1] += gy[m] / f.area * pixels_per_ndc;
  }
  bool finite = true;
  for (int k = 0; k < 9; ++k) finite = finite && is_finite(g9[k]);
  if (finite)
    for (int k = 0; k < 9; ++k) g9_total[k] += g9[k];
}

// ----------------------------------------------------------------------------- approximate gradient
// One edge (a, b) of a face, c the third vertex, seen along one scan axis: axis 0 scans columns
// (u = x, a vertex moves along v = y), axis 1 scans rows (u = y, moves along v = x).
struct ScanEdge {
  float ua, ub, uc, va, vb, vc;
  int direction;  // from inside the face to outside, along v
  int a, b;       // vertex numbers
  int v_axis;     // 1 (y) for axis 0, 0 (x) for axis 1
};

// False when the edge is parallel to the scan lines.
MESHOPT_HD bool scan_edge(const Face& f, int edge, int axis, ScanEdge& e) {
  const int a = edge, b = (edge + 1) % 3, c = (edge + 2) % 3;
  const float* u = axis == 0 ? f.x : f.y;
  const float* v = axis == 0 ? f.y : f.x;
  e.ua = u[a];
  e.ub = u[b];
  e.uc = u[c];
  e.va = v[a];
  e.vb = v[b];
  e.vc = v[c];
  e.a = a;
  e.b = b;
  e.v_axis = 1 - axis;
  if (axis == 0)
    e.direction = e.ua < e.ub ? -1 : 1;
  else
    e.direction = e.ua < e.ub ? 1 : -1;
  return e.ua != e.ub;
}

// Where scan line u0 crosses the edge, the pixel just inside (v_in) and just outside (v_out), the
// crossing with the face's opposite side (v_x2), and the factors k that turn a pixel offset into
// the distance (in NDC) vertex a (k_a) or b (k_b) must move; has_a / has_b are false when that
// vertex sits on the scan line.
struct Crossing {
  float v_x, v_x2, k_a, k_b;
  int v_in, v_out;
  bool has_a, has_b;
};

// False when v_in or v_out falls outside the image.
MESHOPT_HD bool cross(const ScanEdge& e, int u0_int, int S, Crossing& c) {
  const float u0 = (float)u0_int;
  c.v_x = (e.vb - e.va) / (e.ub - e.ua) * (u0 - e.ua) + e.va;
  const float v_in = e.direction > 0 ? floorf(c.v_x) : ceilf(c.v_x);
  const float v_out = v_in + e.direction;
  if (!(v_in >= 0 && v_in < S && v_out >= 0 && v_out < S)) return false;
  c.v_in = (int)v_in;
  c.v_out = (int)v_out;
  if ((u0 - e.ua) * (u0 - e.uc) < 0)
    c.v_x2 = (e.vc - e.va) / (e.uc - e.ua) * (u0 - e.ua) + e.va;
  else
    c.v_x2 = e.ub == e.uc ? e.vc : (e.vb - e.vc) / (e.ub - e.uc) * (u0 - e.uc) + e.vc;
  c.has_a = e.ub != u0;
  c.has_b = e.ua != u0;
  c.k_a = c.has_a ? (e.ub - e.ua) / (e.ub - u0) * 2.f / (float)S : 0.f;
  c.k_b = c.has_b ? (e.ub - e.ua) / (u0 - e.ua) * 2.f / (float)S : 0.f;
  return true;
}

// -delta / distance for a vertex with factor k (NDC units per pixel of offset) and a pixel at
// offset v - v_x; 0 when not finite.
MESHOPT_HD float contribution(float delta, float k, float offset, float eps) {
  float distance = k * offset;
  distance = distance > 0 ? distance + eps : distance - eps;
  const float value = -delta / distance;
  return is_finite(value) ? value : 0.f;
}

// The IN range of a crossing: pixels from v_in to the face's opposite side, clipped to the image.
MESHOPT_HD void inner_range(const ScanEdge& e, const Crossing& c, int S, int& first, int& count) {
  const float v_limit = e.direction > 0 ? ceilf(c.v_x2) : floorf(c.v_x2);
  const float v_in = (float)c.v_in;
  pixel_range(fminf(v_in, v_limit), fmaxf(v_in, v_limit), S, first, count);
}


// The pixels of the scan lines that edge e crosses (u between its two vertices), clipped to the image.
MESHOPT_HD void edge_lines(const ScanEdge& e, int S, int& first, int& count) {
  pixel_range(fminf(e.ua, e.ub), fmaxf(e.ua, e.ub), S, first, count);
}

// Scan line u0 of batch item b in a [B, S, S, ...] pixel array: axis 0 is column u0 (v = row),
// axis 1 is row u0 (v = column).
struct ScanLine {
  int64_t origin, step;
  MESHOPT_HD int64_t pixel(int v) const { return origin + (int64_t)v * step; }
};

MESHOPT_HD ScanLine scan_line(int64_t b, int u0, int axis, int S) {
  ScanLine line;
  line.origin = b * S * S + (axis == 0 ? (int64_t)u0 : (int64_t)u0 * S);
  line.step = axis == 0 ? S : 1;
  return line;
}

// ----------------------------------------------------------------------------- parameters
// The arguments of the ops as flat arrays (contiguous, checked and filled from tensors by
// rasterizer_ops.h), passed by value to the CUDA kernels and by reference on the CPU.

// Which texture cube a face reads. With fill_back, faces [count, 2 count) are reversed copies
// (vertices 2, 1, 0) of faces [0, count) and read their original's cube transposed.
struct Cubes {
  int64_t count;  // Ft: cubes per batch item
  bool fill_back;
  int T;  // samples per side of a cube (0 when no textures are read)
  MESHOPT_HD int64_t source(int64_t f) const { return fill_back && f >= count ? f - count : f; }
  MESHOPT_HD bool reversed(int64_t f) const { return fill_back && f >= count; }
  MESHOPT_HD int64_t floats() const { return (int64_t)T * T * T * 3; }
  // Where the cube read by face f of batch item b starts in a [B, count, T, T, T, 3] array.
  MESHOPT_HD int64_t offset(int64_t b, int64_t f) const { return (b * count + source(f)) * floats(); }
};

struct ForwardParams {
  const float* faces;       // [B, F, 9]
  const float* textures;    // [B, Ft, T, T, T, 3]; null without rgb
  const float* light;       // [B, F, 3]; null when not given
  const float* background;  // [B, 3]
  int64_t B, F;
  Cubes cubes;
  int S;
  float near, far;
  float upper;           // largest texture coordinate, (T - 1) - eps
  int32_t* face_index;   // [B, S, S] outputs: -1 on background
  float* weights;        // [B, S, S, 3]
  float* depth;          // [B, S, S]
  float* rgb;            // [B, S, S, 3]; null without rgb
  float* alpha;          // [B, S, S]
};

struct DepthGradientParams {
  const float* faces;        // [B, F, 9]
  const int32_t* face_index;  // [B, S, S]
  const float* grad_depth;   // [B, S, S]
  int64_t B, F;
  int S;
  float* grad_faces;  // [B, F, 9] output (zeroed)
};

struct TextureGradientParams {
  const float* faces;         // [B, F, 9]
  const int32_t* face_index;  // [B, S, S]
  const float* weights;       // [B, S, S, 3]
  const float* depth;         // [B, S, S]
  const float* grad_rgb;      // [B, S, S, 3]
  const float* textures;      // [B, Ft, T, T, T, 3]
  const float* light;         // [B, F, 3]; null when not given
  int64_t B, F;
  Cubes cubes;
  int S;
  float upper;
  float* grad_textures;  // [B, Ft, T, T, T, 3] output; null when only the light needs a gradient
  float* grad_light;     // [B, F, 3] output (zeroed); null when light is
};

struct XyGradientParams {
  const float* faces;         // [B, F, 9]
  const int32_t* face_index;  // [B, S, S]
  const float* image;         // [B, S, S, C]
  const float* grad_image;    // [B, S, S, C]
  int64_t B, F;
  int S, C;
  float eps;
  float* grad_faces;  // [B, F, 9] output (zeroed)
};

// ----------------------------------------------------------------------------- forward: per pixel

// The nearest face seen so far at one pixel centre. Faces must be offered in increasing order:
// the z-test is strict, so of equal depths the lower face index wins.
struct Nearest {
  float depth;
  int32_t face;  // -1: none
  float w[3];
  MESHOPT_HD void reset(float far) {
    depth = far;
    face = -1;
    w[0] = w[1] = w[2] = 0.f;
  }
  MESHOPT_HD void offer(const Face& f, int32_t id, float qx, float qy, float near, float far) {
    float w_f[3], z;
    if (!shade_pixel(f, qx, qy, near, far, w_f, z)) return;
    if (z < depth) {
      depth = z;
      face = id;
      w[0] = w_f[0];
      w[1] = w_f[1];
      w[2] = w_f[2];
    }
  }
};

// texture_corners of face bf = b * F + f of `faces` (f: its number within the batch item) at
// weights w and depth, in the cube that f reads.
MESHOPT_HD void face_texture_corners(const float* faces, int64_t bf, int64_t f, const Cubes& cubes, float upper,
                                     const float w[3], float depth, int index[8], float weight[8]) {
  const float* f9 = faces + 9 * bf;
  const float z[3] = {f9[2], f9[5], f9[8]};
  texture_corners(w, depth, z, cubes.T, upper, index, weight, cubes.reversed(f));
}

// Colour of face f (batch item b) at weights w and depth: trilinear sample of its cube, times the
// face's light when there is one.
MESHOPT_HD void sample_rgb(const ForwardParams& p, int64_t b, int32_t f, const float w[3], float depth, float rgb[3]) {
  const int64_t bf = b * p.F + f;
  int index[8];
  float corner_weight[8];
  face_texture_corners(p.faces, bf, f, p.cubes, p.upper, w, depth, index, corner_weight);
  const float* texture = p.textures + p.cubes.offset(b, f);
  float color[3] = {0.f, 0.f, 0.f};
  for (int c = 0; c < 8; ++c)
    for (int k = 0; k < 3; ++k) color[k] += corner_weight[c] * texture[3 * index[c] + k];
  if (p.light != nullptr)
    for (int k = 0; k < 3; ++k) color[k] = p.light[3 * bf + k] * color[k];
  for (int k = 0; k < 3; ++k) rgb[k] = color[k];
}

// Every output of pixel (x, y) of batch item b, `best` its nearest face (background when none).
template <bool kRgb>
MESHOPT_HD void write_pixel(const ForwardParams& p, int64_t b, int x, int y, const Nearest& best) {
  const int64_t pixel = (b * p.S + y) * p.S + x;
  p.face_index[pixel] = best.face;
  if (best.face < 0) {
    for (int k = 0; k < 3; ++k) p.weights[3 * pixel + k] = 0.f;
    p.depth[pixel] = p.far;
    p.alpha[pixel] = 0.f;
    if (kRgb)
      for (int k = 0; k < 3; ++k) p.rgb[3 * pixel + k] = p.background[3 * b + k];
    return;
  }
  for (int k = 0; k < 3; ++k) p.weights[3 * pixel + k] = best.w[k];
  p.depth[pixel] = best.depth;
  p.alpha[pixel] = 1.f;
  if (kRgb) sample_rgb(p, b, best.face, best.w, best.depth, p.rgb + 3 * pixel);
}

// ----------------------------------------------------------------------------- backward: textures

// One pixel (flat index `pixel`, covered by face f of batch item b) of backward_textures: the
// trilinear weights times the (lit) gradient go into the cube that f reads (unless grad_textures is
// null), through add(pointer, value) (+= where one thread owns the cube, atomics otherwise); grad_light gets
// this pixel's part of the gradient of f's light, grad . unlit colour.
template <class Add>
MESHOPT_HD void texture_gradient_pixel(const TextureGradientParams& p, int64_t b, int64_t f, int64_t pixel, Add add,
                                       float grad_light[3]) {
  const int64_t bf = b * p.F + f;
  int index[8];
  float corner_weight[8];
  face_texture_corners(p.faces, bf, f, p.cubes, p.upper, p.weights + 3 * pixel, p.depth[pixel], index, corner_weight);
  float light_f[3] = {1.f, 1.f, 1.f};
  if (p.light != nullptr)
    for (int ch = 0; ch < 3; ++ch) light_f[ch] = p.light[3 * bf + ch];
  const float g[3] = {p.grad_rgb[3 * pixel], p.grad_rgb[3 * pixel + 1], p.grad_rgb[3 * pixel + 2]};
  const int64_t offset = p.cubes.offset(b, f);
  const float* texture = p.textures + offset;
  float color[3] = {0.f, 0.f, 0.f};
  for (int c = 0; c < 8; ++c)
    for (int ch = 0; ch < 3; ++ch) color[ch] += corner_weight[c] * texture[3 * index[c] + ch];
  if (p.grad_textures != nullptr) {
    float* grad_cube = p.grad_textures + offset;
    for (int c = 0; c < 8; ++c)
      for (int ch = 0; ch < 3; ++ch) add(grad_cube + 3 * index[c] + ch, corner_weight[c] * (g[ch] * light_f[ch]));
  }
  for (int ch = 0; ch < 3; ++ch) grad_light[ch] = g[ch] * color[ch];
}

// ----------------------------------------------------------------------------- UV texture images
// The UV path (meshopt_cli/render/uv.py is its pure-PyTorch reference, docs/design.md "UV texture
// images"): per covered pixel, perspective-correct UVs from the rasterizer's weights and depth, the
// level of detail from the face's UV footprint, and trilinear reads of a mip pyramid packed into
// one array ([Bi * total, 3] floats, level l at row offset[l], h[l] x w[l] texels, row 0 at v = 1).

constexpr int kMaxMipLevels = 32;
enum UVWrap { kRepeat = 0, kMirroredRepeat = 1, kClampToEdge = 2, kClampToBorder = 3 };

struct MipLevels {
  int count;
  int64_t total;  // texels of one image's pyramid
  int h[kMaxMipLevels], w[kMaxMipLevels];
  int64_t offset[kMaxMipLevels];
};

struct UVShadeParams {
  const float* faces;         // [B, F, 9] screen space, as rasterized
  const int32_t* face_index;  // [B, S, S]
  const float* weights;       // [B, S, S, 3] screen-space barycentric weights
  const float* depth;         // [B, S, S]
  const float* uvs;           // [Bu, F, 3, 2], Bu = 1 or B
  const float* pyramid;       // [Bi * total, 3], Bi = 1 or B
  const float* light;         // [B, F, 3]; null when not given
  const float* background;    // [B, 3]
  int64_t B, F;
  int S;
  bool uvs_batched, image_batched;
  int wrap;  // UVWrap
  MipLevels levels;
  const float* grad_rgb;  // [B, S, S, 3] backward input
  float* rgb;             // [B, S, S, 3] forward output
  float* grad_pyramid;    // [Bi * total, 3] backward output (zeroed); null when not needed
  float* grad_uvs;        // [Bu, F, 3, 2] backward output (zeroed); null when not needed
  float* grad_light;      // [B, F, 3] backward output (zeroed); null when light is
};

// The pyramid's levels: level l + 1 halves level l along each side longer than 1 (ceil), and
// texel (y, x) of it is the mean of the level-l texels (2y..2y+1, 2x..2x+1) that exist (torch's
// avg_pool2d with ceil_mode, which divides by the clipped window).
struct MipParams {
  const float* image;      // [Bi, H, W, 3] forward input
  float* packed;           // [Bi * total, 3] forward output
  float* grad;             // [Bi * total, 3] backward: the packed gradient, turned in place into the
                           // gradient of each level's own texels, level 0 last (the image's)
  int64_t images;          // Bi
  MipLevels levels;
};

// The rows (or columns) of level-l texels averaged into texel `parent` of level l + 1.
MESHOPT_HD int mip_window(int size, int parent) {
  if (size == 1) return 1;
  return 2 * parent + 1 < size ? 2 : 1;
}

// Texel (y, x) of level l + 1 of image i, from level l.
MESHOPT_HD void mip_down_texel(const MipParams& p, int64_t i, int l, int y, int x) {
  const int hs = p.levels.h[l], ws = p.levels.w[l], wd = p.levels.w[l + 1];
  const float* src = p.packed + 3 * (i * p.levels.total + p.levels.offset[l]);
  float* dst = p.packed + 3 * (i * p.levels.total + p.levels.offset[l + 1] + (int64_t)y * wd + x);
  const int y0 = hs > 1 ? 2 * y : y, x0 = ws > 1 ? 2 * x : x;
  const int ny = mip_window(hs, y), nx = mip_window(ws, x);
  float sum[3] = {0.f, 0.f, 0.f};
  for (int dy = 0; dy < ny; ++dy)
    for (int dx = 0; dx < nx; ++dx)
      for (int ch = 0; ch < 3; ++ch) sum[ch] += src[3 * ((int64_t)(y0 + dy) * ws + x0 + dx) + ch];
  const float count = (float)(ny * nx);
  for (int ch = 0; ch < 3; ++ch) dst[ch] = sum[ch] / count;
}

// Backward: texel (y, x) of level l gains its parent's (final) gradient over the parent's window.
MESHOPT_HD void mip_up_texel(const MipParams& p, int64_t i, int l, int y, int x) {
  const int hs = p.levels.h[l], ws = p.levels.w[l], wd = p.levels.w[l + 1];
  const int py = hs > 1 ? y / 2 : y, px = ws > 1 ? x / 2 : x;
  const float count = (float)(mip_window(hs, py) * mip_window(ws, px));
  const float* parent = p.grad + 3 * (i * p.levels.total + p.levels.offset[l + 1] + (int64_t)py * wd + px);
  float* own = p.grad + 3 * (i * p.levels.total + p.levels.offset[l] + (int64_t)y * ws + x);
  for (int ch = 0; ch < 3; ++ch) own[ch] += parent[ch] / count;
}

// torch.nan_to_num's defaults: NaN -> 0, +-inf -> +-FLT_MAX.
MESHOPT_HD float nan_to_num(float x) {
  if (x != x) return 0.f;
  return clampf(x, -FLT_MAX, FLT_MAX);
}

// A texel index wrapped into [0, size); `inside` false where clamp_to_border reads black.
MESHOPT_HD int64_t wrap_index(int64_t index, int64_t size, int wrap, bool& inside) {
  inside = true;
  if (index >= 0 && index < size) return index;  // nearly every tap: no 64-bit division
  if (wrap == kRepeat) {
    const int64_t m = index % size;
    return m < 0 ? m + size : m;
  }
  if (wrap == kMirroredRepeat) {
    int64_t m = index % (2 * size);
    if (m < 0) m += 2 * size;
    return m >= size ? 2 * size - 1 - m : m;
  }
  if (wrap == kClampToBorder) inside = index >= 0 && index < size;
  return index < 0 ? 0 : (index > size - 1 ? size - 1 : index);
}

// The taps of one pixel: up to 8 texel rows of the packed pyramid, their weights and the weights'
// derivatives with respect to the pixel's u and v (level and blend are constants, as in uv.py).
struct UVTaps {
  int count;
  int64_t row[8];
  float weight[8], d_du[8], d_dv[8];
};

// Bilinear taps at (u, v) on `level`, each weight scaled by `blend`, appended to t.
MESHOPT_HD void bilinear_taps(const UVShadeParams& p, int64_t image, int level, float u, float v, float blend,
                              UVTaps& t) {
  const int h = p.levels.h[level], w = p.levels.w[level];
  // |x|, |y| <= 2^30 keeps the integer texel indices in range (far beyond any meaningful UV)
  const float x = clampf(u * (float)w - 0.5f, -1073741824.f, 1073741824.f);
  const float y = clampf((1.f - v) * (float)h - 0.5f, -1073741824.f, 1073741824.f);
  const float x0 = floorf(x), y0 = floorf(y);
  const float fx = x - x0, fy = y - y0;
  const int64_t base = image * p.levels.total + p.levels.offset[level];
  for (int dy = 0; dy < 2; ++dy) {
    bool in_y;
    const int64_t iy = wrap_index((int64_t)y0 + dy, h, p.wrap, in_y);
    const float wy = dy ? fy : 1.f - fy, dwy_dv = (dy ? 1.f : -1.f) * -(float)h;
    for (int dx = 0; dx < 2; ++dx) {
      bool in_x;
      const int64_t ix = wrap_index((int64_t)x0 + dx, w, p.wrap, in_x);
      const float wx = dx ? fx : 1.f - fx, dwx_du = (dx ? 1.f : -1.f) * (float)w;
      const float keep = (in_x && in_y) ? blend : 0.f;
      t.row[t.count] = base + iy * w + ix;
      t.weight[t.count] = wy * wx * keep;
      t.d_du[t.count] = wy * dwx_du * keep;
      t.d_dv[t.count] = dwy_dv * wx * keep;
      ++t.count;
    }
  }
}

// uv.face_footprints of one face: 1 / z of its corners and the six coefficients of its UV
// footprint (per screen axis x, y: sum_k c_k uv_k / z_k in texels of level 0, then sum_k c_k / z_k,
// with c_k the slope of screen weight k), NaN and infinities read as 0.
MESHOPT_HD void uv_face_footprint(const UVShadeParams& p, int64_t bf, const float* corner_uv, float inverse_z[3],
                                  float c[6]) {
  const float* f9 = p.faces + 9 * bf;
  float px[3], py[3];
  for (int k = 0; k < 3; ++k) {
    px[k] = to_pixel(f9[3 * k], p.S);
    py[k] = to_pixel(f9[3 * k + 1], p.S);
    inverse_z[k] = 1.f / f9[3 * k + 2];
  }
  const float area = edge_function(px[0], py[0], px[1], py[1], px[2], py[2]);
  const float width = (float)p.levels.w[0], height = (float)p.levels.h[0];
  for (int j = 0; j < 6; ++j) c[j] = 0.f;
  for (int k = 0; k < 3; ++k) {
    const int next = (k + 1) % 3, prev = (k + 2) % 3;
    const float cx = -(py[prev] - py[next]) / area * inverse_z[k];
    const float cy = (px[prev] - px[next]) / area * inverse_z[k];
    const float tu = corner_uv[2 * k] * width, tv = corner_uv[2 * k + 1] * height;
    c[0] += cx * tu;
    c[1] += cx * tv;
    c[2] += cx;
    c[3] += cy * tu;
    c[4] += cy * tv;
    c[5] += cy;
  }
  for (int j = 0; j < 6; ++j) c[j] = is_finite(c[j]) ? c[j] : 0.f;
}

// Pixel `pixel` (flat b * S * S + y * S + x) of face f >= 0 (checked by the caller): its taps and the
// perspective-correct weights `persp` of its corners' UVs.
MESHOPT_HD void uv_pixel_taps(const UVShadeParams& p, int64_t pixel, int64_t b, int64_t f, UVTaps& t, float persp[3]) {
  const int64_t bf = b * p.F + f;
  const float z = p.depth[pixel];
  const float* corner_uv = p.uvs + ((p.uvs_batched ? b : 0) * p.F + f) * 6;
  float inverse_z[3], c[6];
  uv_face_footprint(p, bf, corner_uv, inverse_z, c);
  float u = 0.f, v = 0.f;
  for (int k = 0; k < 3; ++k) {
    persp[k] = nan_to_num(p.weights[3 * pixel + k] * z * inverse_z[k]);
    u += persp[k] * corner_uv[2 * k];
    v += persp[k] * corner_uv[2 * k + 1];
  }
  // level of detail: log2 of the longer of |d(uv)/dx| and |d(uv)/dy| in texels of level 0
  const float tu = u * (float)p.levels.w[0], tv = v * (float)p.levels.h[0];
  const float dxu = z * (c[0] - tu * c[2]), dxv = z * (c[1] - tv * c[2]);
  const float dyu = z * (c[3] - tu * c[5]), dyv = z * (c[4] - tv * c[5]);
  float rho = fmaxf(dxu * dxu + dxv * dxv, dyu * dyu + dyv * dyv);
  if (rho != rho) rho = 1.f;
  rho = fminf(rho, 1.152921504606846976e18f);  // 2^60 for +inf, as uv.level_of_detail
  float lod = 0.5f * log2f(fmaxf(rho, 8.673617379884035e-19f)) - 1e-4f;
  lod = clampf(lod, 0.f, (float)(p.levels.count - 1));
  const float low = floorf(lod), frac = lod - low;
  const int64_t image = p.image_batched ? b : 0;
  t.count = 0;
  bilinear_taps(p, image, (int)low, u, v, 1.f - frac, t);
  if (frac > 0.f) bilinear_taps(p, image, (int)low + 1 < p.levels.count ? (int)low + 1 : (int)low, u, v, frac, t);
}

// Forward: the shaded colour of one pixel (the background where no face is seen).
MESHOPT_HD void uv_shade_pixel(const UVShadeParams& p, int64_t pixel) {
  const int64_t b = pixel / ((int64_t)p.S * p.S);
  const int32_t f = p.face_index[pixel];
  float* out = p.rgb + 3 * pixel;
  if (f < 0 || f >= p.F) {
    for (int ch = 0; ch < 3; ++ch) out[ch] = p.background[3 * b + ch];
    return;
  }
  UVTaps t;
  float persp[3];
  uv_pixel_taps(p, pixel, b, f, t, persp);
  float color[3] = {0.f, 0.f, 0.f};
  for (int k = 0; k < t.count; ++k)
    for (int ch = 0; ch < 3; ++ch) color[ch] += t.weight[k] * p.pyramid[3 * t.row[k] + ch];
  const float* light = p.light ? p.light + 3 * (b * p.F + f) : nullptr;
  for (int ch = 0; ch < 3; ++ch) out[ch] = light ? color[ch] * light[ch] : color[ch];
}

// Backward of one pixel, through add(pointer, value): the pyramid's texels, the face's corner UVs
// and its light (+= where one thread runs, atomics otherwise).
template <class Add>
MESHOPT_HD void uv_shade_pixel_backward(const UVShadeParams& p, int64_t pixel, Add add) {
  const int64_t b = pixel / ((int64_t)p.S * p.S);
  const int32_t f = p.face_index[pixel];
  if (f < 0 || f >= p.F) return;
  const float* g = p.grad_rgb + 3 * pixel;
  if (g[0] == 0.f && g[1] == 0.f && g[2] == 0.f) return;
  UVTaps t;
  float persp[3];
  uv_pixel_taps(p, pixel, b, f, t, persp);
  const int64_t bf = b * p.F + f;
  // the sampled colour's gradient (grad times the light); one pass over the taps reads each texel
  // once for the colour (the light's gradient), the UV derivative and the texel's own gradient
  float g_color[3] = {g[0], g[1], g[2]};
  if (p.light != nullptr)
    for (int ch = 0; ch < 3; ++ch) g_color[ch] = g[ch] * p.light[3 * bf + ch];
  float color[3] = {0.f, 0.f, 0.f};
  float g_u = 0.f, g_v = 0.f;
  for (int k = 0; k < t.count; ++k) {
    const float* texel = p.pyramid + 3 * t.row[k];
    for (int ch = 0; ch < 3; ++ch) color[ch] += t.weight[k] * texel[ch];
    const float along = texel[0] * g_color[0] + texel[1] * g_color[1] + texel[2] * g_color[2];
    g_u += t.d_du[k] * along;
    g_v += t.d_dv[k] * along;
    if (p.grad_pyramid != nullptr && t.weight[k] != 0.f)
      for (int ch = 0; ch < 3; ++ch) add(p.grad_pyramid + 3 * t.row[k] + ch, t.weight[k] * g_color[ch]);
  }
  if (p.light != nullptr)
    for (int ch = 0; ch < 3; ++ch) add(p.grad_light + 3 * bf + ch, g[ch] * color[ch]);
  if (p.grad_uvs != nullptr) {
    float* target = p.grad_uvs + ((p.uvs_batched ? b : 0) * p.F + f) * 6;
    for (int k = 0; k < 3; ++k) {
      if (persp[k] == 0.f) continue;
      add(target + 2 * k, persp[k] * g_u);
      add(target + 2 * k + 1, persp[k] * g_v);
    }
  }
}

// ----------------------------------------------------------------------------- backward: pixel runs
// A crossing's two runs: OUT, the pixels beyond the edge up to the image border (the face would
// grow over them; they are compared with the pixel just inside, v_in), and IN, the face's own
// pixels from v_in to its opposite side (it would shrink and uncover them; compared with the pixel
// just outside, v_out). A pixel at position v counts with delta = sum_c (I_c - ref_c) G_c where
// delta > 0, adding contribution(delta, k, v - v_x, eps) to each vertex.

// Pixels v = first, first + stride, ... < end of one scan line that face f covers, compared with
// pixel ref_pixel; the contributions are added to sum_a and sum_b in that order.
template <int C>
MESHOPT_HD void walk_run(const XyGradientParams& p, int32_t f, const ScanLine& line, int64_t ref_pixel, int first,
                         int end, int stride, const Crossing& c, float& sum_a, float& sum_b) {
  float ref[C];
  for (int ch = 0; ch < C; ++ch) ref[ch] = p.image[ref_pixel * C + ch];
  for (int v = first; v < end; v += stride) {
    const int64_t pixel = line.pixel(v);
    if (p.face_index[pixel] != f) continue;
    float delta = 0.f;
    for (int ch = 0; ch < C; ++ch) delta += (p.image[pixel * C + ch] - ref[ch]) * p.grad_image[pixel * C + ch];
    if (!(delta > 0.f)) continue;
    const float offset = (float)v - c.v_x;
    sum_a += contribution(delta, c.k_a, offset, p.eps);
    sum_b += contribution(delta, c.k_b, offset, p.eps);
  }
}

// The IN run of crossing c of face f; `lane` of `lanes` walkers visits every lanes-th pixel from
// the lane-th (the CPU walks it alone: 0 of 1).
template <int C>
MESHOPT_HD void add_in_run(const XyGradientParams& p, int32_t f, const ScanEdge& e, const Crossing& c,
                           const ScanLine& line, int lane, int lanes, float& sum_a, float& sum_b) {
  int first, count;
  inner_range(e, c, p.S, first, count);
  walk_run<C>(p, f, line, line.pixel(c.v_out), first + lane, first + count, lanes, c, sum_a, sum_b);
}

// ----------------------------------------------------------------------------- backward: sparse OUT runs
// An OUT run reads only the pixels of its scan line that can contribute, listed per line in
// increasing position by each backend (build_lines on the CPU, line_lists_kernel on CUDA; both
// keep what out_candidate keeps and store it with out_store). A pixel whose gradient is zero in
// every channel contributes nothing; for silhouettes (C = 1) whose pixel just inside has alpha 1
// (always so for the rasterizer's own alpha) only pixels with (alpha - 1) G > 0 can. Losses that
// leave most of the image alone then walk the few pixels that matter, not the whole line.
// Layout, per axis, for line l = b * S + u of B * S lines:
//   count[l]                          number of kept pixels
//   pos[l S + n]                      their positions v along the line (as floats), increasing
//   data[l S (C + 1) + n]             sum_c I_c G_c
//   data[l S (C + 1) + (1 + c) S + n] G_c
struct OutLines {
  const int32_t* count;
  const float* pos;
  const float* data;
};

// Per axis (0 = columns, 1 = rows): lists of pixels with any gradient, and (C = 1 only) of
// pixels that gain when the inside pixel has alpha 1.
struct OutLineSet {
  OutLines any_gradient[2];
  OutLines alpha_gain[2];
};

// Whether a pixel (image I, gradient G, C channels) can contribute to an OUT run of the list kind.
MESHOPT_HD bool out_candidate(const float* I, const float* G, int C, bool alpha_gain) {
  if (alpha_gain) return (I[0] - 1.f) * G[0] > 0.f;
  bool keep = false;
  for (int ch = 0; ch < C; ++ch) keep = keep || G[ch] != 0.f;
  return keep;
}

// Stores a kept pixel at position v as entry n of its line (pos_line = pos + l S, data_line = data + l S (C + 1)).
MESHOPT_HD void out_store(const float* I, const float* G, int C, int S, int n, float v, float* pos_line,
                          float* data_line) {
  pos_line[n] = v;
  float image_dot_grad = 0.f;
  for (int ch = 0; ch < C; ++ch) {
    image_dot_grad += I[ch] * G[ch];
    data_line[(1 + ch) * S + n] = G[ch];
  }
  data_line[n] = image_dot_grad;
}

// [first, last) of a line's n kept pixels at or beyond v_out in the walk's direction: v >= v_out
// when direction > 0, v <= v_out otherwise (positions are increasing).
MESHOPT_HD void out_range(const float* pos, int n, int v_out, int direction, int& first, int& last) {
  const float v = (float)v_out;
  int lo = 0, hi = n;  // the first entry with pos > v (direction < 0) or pos >= v (direction > 0)
  while (lo < hi) {
    const int mid = (lo + hi) / 2;
    if (direction > 0 ? pos[mid] < v : pos[mid] <= v)
      lo = mid + 1;
    else
      hi = mid;
  }
  first = direction > 0 ? lo : 0;
  last = direction > 0 ? n : lo;
}

// Along an OUT run the offset v - v_x never changes sign (it has the run's direction), so the side
// that contribution() adds eps on is fixed per vertex: this one.
MESHOPT_HD float out_eps(float k, int direction, float eps) {
  return (k > 0.f) == (direction > 0) && k != 0.f ? eps : -eps;
}

// The contributions of one kept pixel (position, sum_c I_c G_c) to vertices a and b, the inside
// pixel's sum_c ref_c G_c given: contribution() for both with one reciprocal (same values up to
// rounding); 0 where not finite.
MESHOPT_HD void out_terms(float position, float image_dot_grad, float ref_dot_grad, float k_a, float k_b, float v_x,
                          float eps_a, float eps_b, float& value_a, float& value_b) {
  float delta = image_dot_grad - ref_dot_grad;
  delta = delta > 0.f ? delta : 0.f;
  const float offset = position - v_x;
  const float distance_a = k_a * offset + eps_a, distance_b = k_b * offset + eps_b;
  const float scale = -delta / (distance_a * distance_b);
  value_a = scale * distance_b;
  value_b = scale * distance_a;
  value_a = is_finite(value_a) ? value_a : 0.f;
  value_b = is_finite(value_b) ? value_b : 0.f;
}

// The OUT run of crossing c on line `line` (b S + u0) of `lines`, `ref` the C channels of the
// pixel just inside; `lane` of `lanes` walkers takes every lanes-th kept pixel (CUDA: a warp). The
// CPU walks the same entries with the same out_terms in one vectorised loop (walk_out).
template <int C>
MESHOPT_HD void add_out_run(const OutLines& lines, int64_t line, int S, const float ref[C], const Crossing& c,
                            int direction, float eps, int lane, int lanes, float& sum_a, float& sum_b) {
  const float* pos = lines.pos + line * S;
  const float* data = lines.data + line * S * (C + 1);
  int first, last;
  out_range(pos, lines.count[line], c.v_out, direction, first, last);
  const float eps_a = out_eps(c.k_a, direction, eps), eps_b = out_eps(c.k_b, direction, eps);
  for (int k = first + lane; k < last; k += lanes) {
    float ref_dot_grad = 0.f;
    for (int ch = 0; ch < C; ++ch) ref_dot_grad += ref[ch] * data[(1 + ch) * S + k];
    float value_a, value_b;
    out_terms(pos[k], data[k], ref_dot_grad, c.k_a, c.k_b, c.v_x, eps_a, eps_b, value_a, value_b);
    sum_a += value_a;
    sum_b += value_b;
  }
}

}  // namespace meshopt
