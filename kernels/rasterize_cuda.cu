// CUDA kernels of the meshopt rasterizer: the same four functions, signatures and outputs as
// rasterize_cpu.cpp, for CUDA float32 tensors. All per-face/per-pixel math comes from
// rasterizer_math.h; compile with --fmad=false so that the forward pass rounds exactly like the
// CPU kernels and the reference backend (same visible face on every pixel, ties included).
//
// forward (binned):
//   1. bin_count_kernel   one thread per face: load_face, face_bounds, the box of 16x16 tiles it
//                         overlaps and their number (0 for invalid faces);
//   2. exclusive scan of the counts (at::cumsum);
//   3. bin_emit_kernel    one thread per face: (tile, face) pairs in increasing face order;
//   4. cub radix sort by tile (stable, so faces stay in increasing order within each tile) and
//      tile_range_kernel: the [start, end) of each tile's list;
//   5. raster_kernel      one block per tile (B x tiles), one thread per pixel: faces are staged
//                         through shared memory in list order; strict `<` z-test, so the lower
//                         face index wins ties exactly as on the CPU; then texture sampling.
// backward_xy: crossing_count_kernel counts the scan-line crossings of every (face, edge, axis);
//   after a scan, xy_gradient_kernel gives one warp to each crossing: the warp walks the OUT run
//   (to the image border) and the IN run 32 pixels at a time, reduces and atomically adds to
//   the face's two vertex coordinates.
// backward_depth / backward_textures: one thread per pixel, atomics (the per-face sums, depth's 9
//   and the light's 3, are reduced over the warp first when the whole warp sees the same face);
//   fill-back copies read and accumulate into their original's cube, transposed (texture_corners).
#include <torch/extension.h>

// c10/cuda only: ATen/cuda/CUDAContext.h would also need the cuBLAS/cuSPARSE headers, which
// minimal CUDA toolkits lack.
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <cub/cub.cuh>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "rasterizer_math.h"

using meshopt::Crossing;
using meshopt::Face;
using meshopt::ScanEdge;

namespace {

constexpr int kTile = 16;
constexpr int kTilePixels = kTile * kTile;  // threads of a raster block
constexpr int kBlock = 256;                 // threads of the other kernels (a multiple of 32)
constexpr int kWarp = 32;
constexpr unsigned kFullMask = 0xffffffffu;

// ----------------------------------------------------------------------------- checks, launches

void check_faces(const at::Tensor& faces) {
  TORCH_CHECK(faces.is_cuda(), "faces must be a CUDA tensor");
  TORCH_CHECK(faces.scalar_type() == at::kFloat, "faces must be float32");
  TORCH_CHECK(faces.dim() == 3 && faces.size(2) == 9, "faces must have shape [B, F, 9]");
  TORCH_CHECK(faces.is_contiguous(), "faces must be contiguous");
}

// `t` is a contiguous tensor of `dtype` on the device of `faces`, of shape `shape`.
void check_input(const at::Tensor& t, const char* name, const at::Tensor& faces, at::ScalarType dtype,
                 at::IntArrayRef shape) {
  TORCH_CHECK(t.is_cuda() && t.device() == faces.device(), name, " must be a CUDA tensor on ", faces.device(),
              ", got ", t.device());
  TORCH_CHECK(t.scalar_type() == dtype, name, " must be ", dtype, ", got ", t.scalar_type());
  TORCH_CHECK(t.sizes() == shape, name, " must have shape ", shape, ", got ", t.sizes());
  TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
}

// textures [B, Ft, T, T, T, 3] with Ft = F (F / 2 with fill_back), light [B, F, 3] or empty.
void check_textures(const at::Tensor& textures, const at::Tensor& light, const at::Tensor& faces, bool fill_back) {
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

// Blocks for a grid-stride loop over `items` work items of `per_block` each.
int grid_for(int64_t items, int64_t per_block) {
  const int64_t blocks = (items + per_block - 1) / per_block;
  int device = 0, processors = 0;
  C10_CUDA_CHECK(cudaGetDevice(&device));
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&processors, cudaDevAttrMultiProcessorCount, device));
  const int64_t cap = (int64_t)std::max(processors, 1) * 32;
  return (int)std::max<int64_t>(1, std::min(blocks, cap));
}

int64_t last_value(const at::Tensor& inclusive) { return inclusive[inclusive.size(0) - 1].item<int64_t>(); }

__device__ __forceinline__ float warp_sum(float value) {
  for (int offset = kWarp / 2; offset > 0; offset >>= 1) value += __shfl_xor_sync(kFullMask, value, offset);
  return value;
}

// ----------------------------------------------------------------------------- forward: binning

// Per face: the box of tiles (first tile column, first tile row, columns, rows) and its size.
__global__ void __launch_bounds__(kBlock)
    bin_count_kernel(const float* __restrict__ faces, int64_t num_faces, int S, int32_t* __restrict__ tile_box,
                     int64_t* __restrict__ tile_count) {
  for (int64_t bf = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; bf < num_faces;
       bf += (int64_t)gridDim.x * blockDim.x) {
    const Face face = meshopt::load_face(faces + 9 * bf, S);
    int x_first, x_count, y_first, y_count;
    meshopt::face_bounds(face, S, x_first, x_count, y_first, y_count);
    int32_t box[4] = {0, 0, 0, 0};
    if (face.valid && x_count > 0 && y_count > 0) {
      box[0] = x_first / kTile;
      box[1] = y_first / kTile;
      box[2] = (x_first + x_count - 1) / kTile - box[0] + 1;
      box[3] = (y_first + y_count - 1) / kTile - box[1] + 1;
    }
    for (int k = 0; k < 4; ++k) tile_box[4 * bf + k] = box[k];
    tile_count[bf] = (int64_t)box[2] * box[3];
  }
}

// Per face: its (tile, face) pairs at its offset; tiles are numbered b * n * n + row * n + column.
__global__ void __launch_bounds__(kBlock)
    bin_emit_kernel(const int32_t* __restrict__ tile_box, const int64_t* __restrict__ tile_count,
                    const int64_t* __restrict__ inclusive, int64_t num_faces, int64_t F, int n,
                    int32_t* __restrict__ keys, int32_t* __restrict__ values) {
  for (int64_t bf = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; bf < num_faces;
       bf += (int64_t)gridDim.x * blockDim.x) {
    const int64_t count = tile_count[bf];
    if (count == 0) continue;
    int64_t slot = inclusive[bf] - count;
    const int32_t base = (int32_t)((bf / F) * n * n);
    const int32_t face = (int32_t)(bf % F);
    const int32_t* box = tile_box + 4 * bf;
    for (int ty = box[1]; ty < box[1] + box[3]; ++ty)
      for (int tx = box[0]; tx < box[0] + box[2]; ++tx) {
        keys[slot] = base + ty * n + tx;
        values[slot] = face;
        ++slot;
      }
  }
}

// [start, end) of every tile's run in the sorted pairs (tiles without faces keep 0, 0).
__global__ void __launch_bounds__(kBlock)
    tile_range_kernel(const int32_t* __restrict__ sorted_keys, int64_t num_pairs, int32_t* __restrict__ tile_start,
                      int32_t* __restrict__ tile_end) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < num_pairs;
       i += (int64_t)gridDim.x * blockDim.x) {
    const int32_t key = sorted_keys[i];
    if (i == 0 || sorted_keys[i - 1] != key) tile_start[key] = (int32_t)i;
    if (i == num_pairs - 1 || sorted_keys[i + 1] != key) tile_end[key] = (int32_t)(i + 1);
  }
}

// Stable sort of the pairs by tile: cub radix sort of the (non-negative) keys as unsigned
// integers, on their low `end_bit` bits only.
void sort_pairs_by_tile(const at::Tensor& keys, const at::Tensor& values, at::Tensor& sorted_keys,
                        at::Tensor& sorted_values, int end_bit, cudaStream_t stream) {
  const int num = (int)keys.size(0);
  const auto* keys_in = reinterpret_cast<const uint32_t*>(keys.data_ptr<int32_t>());
  auto* keys_out = reinterpret_cast<uint32_t*>(sorted_keys.data_ptr<int32_t>());
  const int32_t* values_in = values.data_ptr<int32_t>();
  int32_t* values_out = sorted_values.data_ptr<int32_t>();
  size_t temp_bytes = 0;
  C10_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, temp_bytes, keys_in, keys_out, values_in, values_out, num, 0,
                                                 end_bit, stream));
  auto temp = at::empty({(int64_t)temp_bytes}, keys.options().dtype(at::kByte));
  C10_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp.data_ptr(), temp_bytes, keys_in, keys_out, values_in, values_out,
                                                 num, 0, end_bit, stream));
}

// ----------------------------------------------------------------------------- forward: raster

// One block per tile of one batch item, one thread per pixel.
template <bool kRgb>
__global__ void __launch_bounds__(kTilePixels)
    raster_kernel(const float* __restrict__ faces, const float* __restrict__ textures,
                  const float* __restrict__ background, const int32_t* __restrict__ tile_start,
                  const int32_t* __restrict__ tile_end, const int32_t* __restrict__ tile_faces,
                  const float* __restrict__ light, int64_t F, int64_t Ft, bool fill_back, int S, int n, int T,
                  float near, float far, float upper, int32_t* __restrict__ face_index,
                  float* __restrict__ weights, float* __restrict__ depth, float* __restrict__ rgb,
                  float* __restrict__ alpha) {
  __shared__ Face s_face[kTilePixels];
  __shared__ int s_box[kTilePixels][4];  // x_first, x_end, y_first, y_end (pixels, end exclusive)
  __shared__ int s_id[kTilePixels];

  const int64_t tile_id = blockIdx.x;  // b * n * n + row * n + column
  const int64_t b = tile_id / ((int64_t)n * n);
  const int tile = (int)(tile_id % ((int64_t)n * n));
  const int x = (tile % n) * kTile + (int)threadIdx.x % kTile;
  const int y = (tile / n) * kTile + (int)threadIdx.x / kTile;
  const bool in_image = x < S && y < S;
  const float qx = (float)x, qy = (float)y;

  float best_depth = far;
  int best_face = -1;
  float best_w[3] = {0.f, 0.f, 0.f};
  const int begin = tile_start[tile_id], end = tile_end[tile_id];
  for (int chunk = begin; chunk < end; chunk += kTilePixels) {
    const int m = end - chunk < kTilePixels ? end - chunk : kTilePixels;
    if ((int)threadIdx.x < m) {
      const int f = tile_faces[chunk + threadIdx.x];
      const Face face = meshopt::load_face(faces + 9 * (b * F + f), S);
      int x_first, x_count, y_first, y_count;
      meshopt::face_bounds(face, S, x_first, x_count, y_first, y_count);
      s_face[threadIdx.x] = face;
      s_box[threadIdx.x][0] = x_first;
      s_box[threadIdx.x][1] = x_first + x_count;
      s_box[threadIdx.x][2] = y_first;
      s_box[threadIdx.x][3] = y_first + y_count;
      s_id[threadIdx.x] = f;
    }
    __syncthreads();
    if (in_image) {
      for (int i = 0; i < m; ++i) {  // increasing face order
        if (x < s_box[i][0] || x >= s_box[i][1] || y < s_box[i][2] || y >= s_box[i][3]) continue;
        float w[3], z;
        if (!meshopt::shade_pixel(s_face[i], qx, qy, near, far, w, z)) continue;
        if (z < best_depth) {
          best_depth = z;
          best_face = s_id[i];
          best_w[0] = w[0];
          best_w[1] = w[1];
          best_w[2] = w[2];
        }
      }
    }
    __syncthreads();
  }
  if (!in_image) return;

  const int64_t p = (b * S + y) * S + x;
  face_index[p] = best_face;
  if (best_face < 0) {
    weights[3 * p] = weights[3 * p + 1] = weights[3 * p + 2] = 0.f;
    depth[p] = far;
    alpha[p] = 0.f;
    if (kRgb)
      for (int k = 0; k < 3; ++k) rgb[3 * p + k] = background[3 * b + k];
    return;
  }
  for (int k = 0; k < 3; ++k) weights[3 * p + k] = best_w[k];
  depth[p] = best_depth;
  alpha[p] = 1.f;
  if (kRgb) {
    const int64_t bf = b * F + best_face;
    const float* f9 = faces + 9 * bf;
    const float z[3] = {f9[2], f9[5], f9[8]};
    const bool reversed = fill_back && best_face >= Ft;  // a back-face copy reads its original's cube
    int index[8];
    float corner_weight[8];
    meshopt::texture_corners(best_w, best_depth, z, T, upper, index, corner_weight, reversed);
    const float* texture = textures + (b * Ft + (reversed ? best_face - Ft : best_face)) * ((int64_t)T * T * T * 3);
    float color[3] = {0.f, 0.f, 0.f};
    for (int c = 0; c < 8; ++c)
      for (int k = 0; k < 3; ++k) color[k] += corner_weight[c] * texture[3 * index[c] + k];
    if (light != nullptr)
      for (int k = 0; k < 3; ++k) color[k] = light[3 * bf + k] * color[k];
    for (int k = 0; k < 3; ++k) rgb[3 * p + k] = color[k];
  }
}

}  // namespace

std::vector<at::Tensor> forward(at::Tensor faces, at::Tensor textures, int64_t image_size, double near, double far,
                                double eps, at::Tensor background, at::Tensor light, bool fill_back, bool need_rgb) {
  check_faces(faces);
  TORCH_CHECK(image_size > 0, "image_size must be positive");
  const c10::cuda::CUDAGuard guard(faces.device());
  const int S = (int)image_size;
  const int64_t B = faces.size(0), F = faces.size(1);
  if (need_rgb) check_textures(textures, light, faces, fill_back);
  const int T = need_rgb ? (int)textures.size(2) : 0;
  const int64_t Ft = need_rgb ? textures.size(1) : F;
  const bool has_light = need_rgb && light.numel() > 0;
  check_input(background, "background", faces, at::kFloat, {B, 3});

  auto opts = faces.options();
  auto face_index = at::empty({B, S, S}, opts.dtype(at::kInt));
  auto weights = at::empty({B, S, S, 3}, opts);
  auto depth = at::empty({B, S, S}, opts);
  auto alpha = at::empty({B, S, S}, opts);
  auto rgb = need_rgb ? at::empty({B, S, S, 3}, opts) : at::empty({0}, opts);

  const int n = (S + kTile - 1) / kTile;
  const int64_t num_tiles = B * n * n;
  TORCH_CHECK(num_tiles < std::numeric_limits<int32_t>::max(), "too many tiles: batch or image too large");
  if (num_tiles == 0) return {face_index, weights, depth, rgb, alpha};
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const auto int_opts = opts.dtype(at::kInt);

  auto tile_start = at::zeros({num_tiles}, int_opts);
  auto tile_end = at::zeros({num_tiles}, int_opts);
  at::Tensor tile_faces = at::empty({0}, int_opts);
  const int64_t num_faces = B * F;
  if (num_faces > 0) {
    auto tile_box = at::empty({num_faces, 4}, int_opts);
    auto tile_count = at::empty({num_faces}, opts.dtype(at::kLong));
    bin_count_kernel<<<grid_for(num_faces, kBlock), kBlock, 0, stream>>>(
        faces.data_ptr<float>(), num_faces, S, tile_box.data_ptr<int32_t>(), tile_count.data_ptr<int64_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    const auto inclusive = at::cumsum(tile_count, 0);
    const int64_t num_pairs = last_value(inclusive);
    TORCH_CHECK(num_pairs < std::numeric_limits<int32_t>::max(), "too many (tile, face) pairs: ", num_pairs);
    if (num_pairs > 0) {
      auto keys = at::empty({num_pairs}, int_opts);
      auto values = at::empty({num_pairs}, int_opts);
      bin_emit_kernel<<<grid_for(num_faces, kBlock), kBlock, 0, stream>>>(
          tile_box.data_ptr<int32_t>(), tile_count.data_ptr<int64_t>(), inclusive.data_ptr<int64_t>(), num_faces, F, n,
          keys.data_ptr<int32_t>(), values.data_ptr<int32_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      int end_bit = 1;
      while (end_bit < 31 && ((num_tiles - 1) >> end_bit) != 0) ++end_bit;
      auto sorted_keys = at::empty_like(keys);
      tile_faces = at::empty_like(values);
      sort_pairs_by_tile(keys, values, sorted_keys, tile_faces, end_bit, stream);
      tile_range_kernel<<<grid_for(num_pairs, kBlock), kBlock, 0, stream>>>(
          sorted_keys.data_ptr<int32_t>(), num_pairs, tile_start.data_ptr<int32_t>(), tile_end.data_ptr<int32_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
  }

  const float near_f = (float)near, far_f = (float)far;
  const float upper = (float)(T - 1) - (float)eps;
  const float* textures_p = need_rgb ? textures.data_ptr<float>() : nullptr;
  float* rgb_p = need_rgb ? rgb.data_ptr<float>() : nullptr;
  const float* light_p = has_light ? light.data_ptr<float>() : nullptr;
  const int32_t* tile_faces_p = tile_faces.numel() > 0 ? tile_faces.data_ptr<int32_t>() : nullptr;
  if (need_rgb)
    raster_kernel<true><<<(unsigned)num_tiles, kTilePixels, 0, stream>>>(
        faces.data_ptr<float>(), textures_p, background.data_ptr<float>(), tile_start.data_ptr<int32_t>(),
        tile_end.data_ptr<int32_t>(), tile_faces_p, light_p, F, Ft, fill_back, S, n, T, near_f, far_f, upper,
        face_index.data_ptr<int32_t>(),
        weights.data_ptr<float>(), depth.data_ptr<float>(), rgb_p, alpha.data_ptr<float>());
  else
    raster_kernel<false><<<(unsigned)num_tiles, kTilePixels, 0, stream>>>(
        faces.data_ptr<float>(), textures_p, background.data_ptr<float>(), tile_start.data_ptr<int32_t>(),
        tile_end.data_ptr<int32_t>(), tile_faces_p, light_p, F, Ft, fill_back, S, n, T, near_f, far_f, upper,
        face_index.data_ptr<int32_t>(),
        weights.data_ptr<float>(), depth.data_ptr<float>(), rgb_p, alpha.data_ptr<float>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {face_index, weights, depth, rgb, alpha};
}

namespace {

// ----------------------------------------------------------------------------- backward: depth, textures

// One thread per pixel; when the whole warp sees one face its 9 sums are reduced before the atomics.
__global__ void __launch_bounds__(kBlock)
    depth_gradient_kernel(const float* __restrict__ faces, const int32_t* __restrict__ face_index,
                          const float* __restrict__ grad_depth, int64_t num_pixels, int64_t F, int S,
                          float* __restrict__ grad_faces) {
  const int lane = (int)threadIdx.x % kWarp;
  const int64_t SS = (int64_t)S * S;
  // the loop bound depends on the block only, so whole warps iterate together
  for (int64_t base = (int64_t)blockIdx.x * blockDim.x; base < num_pixels; base += (int64_t)gridDim.x * blockDim.x) {
    const int64_t p = base + threadIdx.x;
    long long bf = -1;
    if (p < num_pixels) {
      const int f = face_index[p];
      if (f >= 0 && f < F) bf = (p / SS) * F + f;
    }
    float g9[9] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
    if (bf >= 0) {
      const Face face = meshopt::load_face(faces + 9 * bf, S);
      meshopt::add_depth_gradient(face, (float)(p % S), (float)((p / S) % S), grad_depth[p], S, g9);
    }
    const long long bf0 = __shfl_sync(kFullMask, bf, 0);
    if (__all_sync(kFullMask, bf == bf0)) {
      if (bf0 < 0) continue;
      for (int k = 0; k < 9; ++k) g9[k] = warp_sum(g9[k]);
      if (lane == 0)
        for (int k = 0; k < 9; ++k) atomicAdd(grad_faces + 9 * bf0 + k, g9[k]);
    } else if (bf >= 0) {
      for (int k = 0; k < 9; ++k) atomicAdd(grad_faces + 9 * bf + k, g9[k]);
    }
  }
}

// One thread per pixel: the trilinear weights times the (lit) gradient into the cube read by the
// pixel's face, and the gradient of the light (grad . unlit colour), warp-aggregated when the whole
// warp sees one face.
__global__ void __launch_bounds__(kBlock)
    texture_gradient_kernel(const float* __restrict__ faces, const int32_t* __restrict__ face_index,
                            const float* __restrict__ weights, const float* __restrict__ depth,
                            const float* __restrict__ grad_rgb, const float* __restrict__ textures,
                            const float* __restrict__ light, int64_t num_pixels, int64_t F, int64_t Ft, bool fill_back,
                            int S, int T, float upper, float* __restrict__ grad_textures,
                            float* __restrict__ grad_light) {
  const int lane = (int)threadIdx.x % kWarp;
  const int64_t SS = (int64_t)S * S;
  const int64_t cube = (int64_t)T * T * T * 3;
  // the loop bound depends on the block only, so whole warps iterate together
  for (int64_t base = (int64_t)blockIdx.x * blockDim.x; base < num_pixels; base += (int64_t)gridDim.x * blockDim.x) {
    const int64_t p = base + threadIdx.x;
    long long bf = -1;
    float grad_light_p[3] = {0.f, 0.f, 0.f};
    if (p < num_pixels) {
      const int f = face_index[p];
      if (f >= 0 && f < F) bf = (p / SS) * F + f;
    }
    if (bf >= 0) {
      const int f = (int)(bf % F);
      const float* f9 = faces + 9 * bf;
      const float z[3] = {f9[2], f9[5], f9[8]};
      const bool reversed = fill_back && f >= Ft;
      const int64_t bs = (p / SS) * Ft + (reversed ? f - Ft : f);  // the cube read by face f
      int index[8];
      float corner_weight[8];
      meshopt::texture_corners(weights + 3 * p, depth[p], z, T, upper, index, corner_weight, reversed);
      float light_f[3] = {1.f, 1.f, 1.f};
      if (light != nullptr)
        for (int ch = 0; ch < 3; ++ch) light_f[ch] = light[3 * bf + ch];
      const float g[3] = {grad_rgb[3 * p], grad_rgb[3 * p + 1], grad_rgb[3 * p + 2]};
      const float* texture = textures + bs * cube;
      float* grad_cube = grad_textures + bs * cube;
      float color[3] = {0.f, 0.f, 0.f};
      for (int c = 0; c < 8; ++c)
        for (int ch = 0; ch < 3; ++ch) {
          atomicAdd(grad_cube + 3 * index[c] + ch, corner_weight[c] * (g[ch] * light_f[ch]));
          color[ch] += corner_weight[c] * texture[3 * index[c] + ch];
        }
      for (int ch = 0; ch < 3; ++ch) grad_light_p[ch] = g[ch] * color[ch];
    }
    if (light == nullptr) continue;
    const long long bf0 = __shfl_sync(kFullMask, bf, 0);
    if (__all_sync(kFullMask, bf == bf0)) {
      if (bf0 < 0) continue;
      for (int ch = 0; ch < 3; ++ch) grad_light_p[ch] = warp_sum(grad_light_p[ch]);
      if (lane == 0)
        for (int ch = 0; ch < 3; ++ch) atomicAdd(grad_light + 3 * bf0 + ch, grad_light_p[ch]);
    } else if (bf >= 0) {
      for (int ch = 0; ch < 3; ++ch) atomicAdd(grad_light + 3 * bf + ch, grad_light_p[ch]);
    }
  }
}

}  // namespace

at::Tensor backward_depth(at::Tensor faces, at::Tensor face_index, at::Tensor grad_depth) {
  check_faces(faces);
  const c10::cuda::CUDAGuard guard(faces.device());
  const int64_t B = faces.size(0), F = faces.size(1);
  TORCH_CHECK(face_index.dim() == 3, "face_index must be [B, S, S]");
  const int64_t S = face_index.size(1);
  check_input(face_index, "face_index", faces, at::kInt, {B, S, S});
  check_input(grad_depth, "grad_depth", faces, at::kFloat, {B, S, S});
  auto grad_faces = at::zeros_like(faces);
  const int64_t num_pixels = B * S * S;
  if (num_pixels == 0 || F == 0) return grad_faces;
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  depth_gradient_kernel<<<grid_for(num_pixels, kBlock), kBlock, 0, stream>>>(
      faces.data_ptr<float>(), face_index.data_ptr<int32_t>(), grad_depth.data_ptr<float>(), num_pixels, F, (int)S,
      grad_faces.data_ptr<float>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return grad_faces;
}

std::vector<at::Tensor> backward_textures(at::Tensor faces, at::Tensor face_index, at::Tensor weights, at::Tensor depth,
                                          at::Tensor grad_rgb, at::Tensor textures, at::Tensor light, bool fill_back,
                                          double eps) {
  check_faces(faces);
  const c10::cuda::CUDAGuard guard(faces.device());
  const int64_t B = faces.size(0), F = faces.size(1);
  check_textures(textures, light, faces, fill_back);
  TORCH_CHECK(face_index.dim() == 3, "face_index must be [B, S, S]");
  const int64_t S = face_index.size(1);
  const int T = (int)textures.size(2);
  const int64_t Ft = textures.size(1);
  const bool has_light = light.numel() > 0;
  check_input(face_index, "face_index", faces, at::kInt, {B, S, S});
  check_input(weights, "weights", faces, at::kFloat, {B, S, S, 3});
  check_input(depth, "depth", faces, at::kFloat, {B, S, S});
  check_input(grad_rgb, "grad_rgb", faces, at::kFloat, {B, S, S, 3});
  auto grad_textures = at::zeros_like(textures);
  auto grad_light = has_light ? at::zeros({B, F, 3}, faces.options()) : at::empty({0}, faces.options());
  const int64_t num_pixels = B * S * S;
  if (num_pixels == 0 || F == 0) return {grad_textures, grad_light};
  const float upper = (float)(T - 1) - (float)eps;
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  texture_gradient_kernel<<<grid_for(num_pixels, kBlock), kBlock, 0, stream>>>(
      faces.data_ptr<float>(), face_index.data_ptr<int32_t>(), weights.data_ptr<float>(), depth.data_ptr<float>(),
      grad_rgb.data_ptr<float>(), textures.data_ptr<float>(), has_light ? light.data_ptr<float>() : nullptr, num_pixels,
      F, Ft, fill_back, (int)S, T, upper, grad_textures.data_ptr<float>(),
      has_light ? grad_light.data_ptr<float>() : nullptr);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {grad_textures, grad_light};
}

namespace {

// ----------------------------------------------------------------------------- backward: approximate gradient

// Crossings are numbered per (face, edge, axis) item: item = bf * 6 + edge * 2 + axis.
constexpr int kItemsPerFace = 6;

// Number of scan lines u0 that each item crosses (0 for invalid faces and edges parallel to the lines).
__global__ void __launch_bounds__(kBlock)
    crossing_count_kernel(const float* __restrict__ faces, int64_t num_items, int S, int64_t* __restrict__ count) {
  for (int64_t item = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; item < num_items;
       item += (int64_t)gridDim.x * blockDim.x) {
    const int64_t bf = item / kItemsPerFace;
    const int edge = (int)(item % kItemsPerFace) / 2, axis = (int)(item % 2);
    const Face face = meshopt::load_face(faces + 9 * bf, S);
    int u_first = 0, u_count = 0;
    ScanEdge e;
    if (face.valid && meshopt::scan_edge(face, edge, axis, e))
      meshopt::pixel_range(fminf(e.ua, e.ub), fmaxf(e.ua, e.ub), S, u_first, u_count);
    count[item] = u_count;
  }
}

// One warp per crossing (face, edge, axis, scan line u0): the same sums as face_gradient in
// rasterize_cpu.cpp, the pixels of the OUT and IN runs shared among the 32 lanes. Every branch
// before the reduction is uniform across the warp (all lanes compute the same crossing).
template <int C>
__global__ void __launch_bounds__(kBlock)
    xy_gradient_kernel(const float* __restrict__ faces, const int32_t* __restrict__ face_index,
                       const float* __restrict__ image, const float* __restrict__ grad_image,
                       const int64_t* __restrict__ inclusive, int64_t num_items, int64_t num_crossings, int64_t F,
                       int S, float eps, float* __restrict__ grad_faces) {
  const int lane = (int)threadIdx.x % kWarp;
  const int64_t warps = (int64_t)gridDim.x * (blockDim.x / kWarp);
  for (int64_t k = (int64_t)blockIdx.x * (blockDim.x / kWarp) + threadIdx.x / kWarp; k < num_crossings; k += warps) {
    // the item owning crossing k: the first with inclusive[item] > k
    int64_t lo = 0, hi = num_items - 1;
    while (lo < hi) {
      const int64_t mid = (lo + hi) / 2;
      if (inclusive[mid] > k)
        hi = mid;
      else
        lo = mid + 1;
    }
    const int64_t item = lo;
    const int64_t item_start = item > 0 ? inclusive[item - 1] : 0;
    const int64_t bf = item / kItemsPerFace;
    const int edge = (int)(item % kItemsPerFace) / 2, axis = (int)(item % 2);
    const int64_t b = bf / F;
    const int f = (int)(bf % F);

    const Face face = meshopt::load_face(faces + 9 * bf, S);
    ScanEdge e;
    meshopt::scan_edge(face, edge, axis, e);
    int u_first, u_count;
    meshopt::pixel_range(fminf(e.ua, e.ub), fmaxf(e.ua, e.ub), S, u_first, u_count);
    const int u0 = u_first + (int)(k - item_start);
    Crossing c;
    if (!meshopt::cross(e, u0, S, c)) continue;

    // pixel (u0, v) of scan line u0: axis 0 is column u0 (v = row), axis 1 is row u0 (v = column)
    const int64_t line = axis == 0 ? b * S * S + u0 : (b * S + u0) * S;
    const int64_t step = axis == 0 ? S : 1;
    float sum_a = 0.f, sum_b = 0.f;

    // OUT: the face grows over the pixels beyond the edge, up to the image border
    const int64_t pixel_in = line + c.v_in * step;
    if (face_index[pixel_in] == f) {
      float ref[C];
      for (int ch = 0; ch < C; ++ch) ref[ch] = image[pixel_in * C + ch];
      const int first = e.direction > 0 ? c.v_out : 0, last = e.direction > 0 ? S - 1 : c.v_out;
      for (int v = first + lane; v <= last; v += kWarp) {
        const int64_t pixel = line + v * step;
        float delta = 0.f;
        for (int ch = 0; ch < C; ++ch) delta += (image[pixel * C + ch] - ref[ch]) * grad_image[pixel * C + ch];
        if (!(delta > 0.f)) continue;  // CPU adds +-0 for these
        const float offset = (float)v - c.v_x;
        sum_a += meshopt::contribution(delta, c.k_a, offset, eps);
        sum_b += meshopt::contribution(delta, c.k_b, offset, eps);
      }
    }
    // IN: the face shrinks and uncovers its own pixels, up to its opposite side
    int in_first, in_count;
    meshopt::inner_range(e, c, S, in_first, in_count);
    const int64_t pixel_out = line + c.v_out * step;
    float ref_out[C];
    for (int ch = 0; ch < C; ++ch) ref_out[ch] = image[pixel_out * C + ch];
    for (int v = in_first + lane; v < in_first + in_count; v += kWarp) {
      const int64_t pixel = line + v * step;
      if (face_index[pixel] != f) continue;
      float delta = 0.f;
      for (int ch = 0; ch < C; ++ch) delta += (image[pixel * C + ch] - ref_out[ch]) * grad_image[pixel * C + ch];
      if (!(delta > 0.f)) continue;
      const float offset = (float)v - c.v_x;
      sum_a += meshopt::contribution(delta, c.k_a, offset, eps);
      sum_b += meshopt::contribution(delta, c.k_b, offset, eps);
    }
    sum_a = warp_sum(sum_a);
    sum_b = warp_sum(sum_b);
    if (lane == 0) {
      if (c.has_a && sum_a != 0.f) atomicAdd(grad_faces + 9 * bf + 3 * e.a + e.v_axis, sum_a);
      if (c.has_b && sum_b != 0.f) atomicAdd(grad_faces + 9 * bf + 3 * e.b + e.v_axis, sum_b);
    }
  }
}

template <int C>
void launch_xy_gradient(const at::Tensor& faces, const at::Tensor& face_index, const at::Tensor& image,
                        const at::Tensor& grad_image, const at::Tensor& inclusive, int64_t num_crossings, int S,
                        float eps, at::Tensor& grad_faces, cudaStream_t stream) {
  xy_gradient_kernel<C><<<grid_for(num_crossings, kBlock / kWarp), kBlock, 0, stream>>>(
      faces.data_ptr<float>(), face_index.data_ptr<int32_t>(), image.data_ptr<float>(), grad_image.data_ptr<float>(),
      inclusive.data_ptr<int64_t>(), inclusive.size(0), num_crossings, faces.size(1), S, eps,
      grad_faces.data_ptr<float>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace

at::Tensor backward_xy(at::Tensor faces, at::Tensor face_index, at::Tensor image, at::Tensor grad_image, double eps) {
  check_faces(faces);
  const c10::cuda::CUDAGuard guard(faces.device());
  const int64_t B = faces.size(0), F = faces.size(1);
  TORCH_CHECK(face_index.dim() == 3, "face_index must be [B, S, S]");
  TORCH_CHECK(image.dim() == 4, "image must be [B, S, S, C]");
  const int64_t S = face_index.size(1);
  const int64_t C = image.size(3);
  TORCH_CHECK(C == 1 || C == 3 || C == 4, "image must have 1, 3 or 4 channels");
  check_input(face_index, "face_index", faces, at::kInt, {B, S, S});
  check_input(image, "image", faces, at::kFloat, {B, S, S, C});
  check_input(grad_image, "grad_image", faces, at::kFloat, {B, S, S, C});
  auto grad_faces = at::zeros_like(faces);
  const int64_t num_items = B * F * kItemsPerFace;
  if (num_items == 0 || S == 0) return grad_faces;
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  auto count = at::empty({num_items}, faces.options().dtype(at::kLong));
  crossing_count_kernel<<<grid_for(num_items, kBlock), kBlock, 0, stream>>>(faces.data_ptr<float>(), num_items, (int)S,
                                                                              count.data_ptr<int64_t>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  const auto inclusive = at::cumsum(count, 0);
  const int64_t num_crossings = last_value(inclusive);
  if (num_crossings == 0) return grad_faces;
  if (C == 1)
    launch_xy_gradient<1>(faces, face_index, image, grad_image, inclusive, num_crossings, (int)S, (float)eps, grad_faces, stream);
  else if (C == 3)
    launch_xy_gradient<3>(faces, face_index, image, grad_image, inclusive, num_crossings, (int)S, (float)eps, grad_faces, stream);
  else
    launch_xy_gradient<4>(faces, face_index, image, grad_image, inclusive, num_crossings, (int)S, (float)eps, grad_faces, stream);
  return grad_faces;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward, "rasterize: face index, weights, depth, rgb, alpha");
  m.def("backward_xy", &backward_xy, "approximate gradient of rgb/alpha with respect to x, y");
  m.def("backward_depth", &backward_depth, "exact gradient of depth");
  m.def("backward_textures", &backward_textures, "gradient of rgb with respect to the texture cubes");
}
