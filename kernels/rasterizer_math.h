// Per-face and per-pixel math of the meshopt rasterizer, shared by the CPU (rasterize_cpu.cpp)
// and CUDA (rasterize_cuda.cu) kernels so that the two cannot drift. The pure-PyTorch oracle,
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

}  // namespace meshopt
