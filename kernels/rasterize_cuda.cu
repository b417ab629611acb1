// CUDA kernels of the meshopt rasterizer: the same eight ops, signatures and outputs as
// rasterize_cpu.cpp, for CUDA float32 tensors. Shared with the CPU kernels: all per-face/per-pixel
// math, the parameter structs (passed by value to every kernel) and the pixel runs of the
// approximate gradient are in rasterizer_math.h; the op signatures, bindings and input checks in
// rasterizer_ops.h. This file holds only the GPU scheduling. Compile with --fmad=false so that the
// forward pass rounds exactly like the CPU kernels and the reference backend (same visible face on
// every pixel, ties included).
//
// forward (binned):
//   1. bin_count_kernel   one thread per face: load_face, face_bounds, the box of 16x16 tiles it
//                         overlaps and their number (0 for invalid faces);
//   2. exclusive scan of the counts (at::cumsum);
//   3. bin_emit_kernel    one thread per face: (tile, face) pairs in increasing face order;
//   4. cub radix sort by tile (stable, so faces stay in increasing order within each tile) and
//      tile_range_kernel: the [start, end) of each tile's list;
//   5. raster_kernel      one block per tile (B x tiles), one thread per pixel: faces are staged
//                         through shared memory in list order; strict `<` z-test (Nearest), so the
//                         lower face index wins ties exactly as on the CPU; then write_pixel.
// backward_xy: line_lists_kernel lists, per scan line and axis, the pixels an OUT run can gain
//   from (one warp per line, compacted in order with a ballot; the rule and layout are
//   meshopt::OutLines's, as on the CPU); crossing_count_kernel counts the scan-line crossings of
//   every (face, edge, axis); after a scan, xy_gradient_kernel gives one warp to each crossing: the
//   warp walks the OUT run over its line's list and the IN run 32 pixels at a time, reduces and
//   atomically adds to the face's two vertex coordinates.
// backward_depth / backward_textures: one thread per pixel, atomics (the per-face sums, depth's 9
//   and the light's 3, are reduced over the warp first when the whole warp sees the same face; so
//   are the texels of cubes up to T = 4, staged in shared memory); fill-back copies read and
//   accumulate into their original's cube, transposed (texture_corners). Without grad_textures
//   (only the light needs a gradient) no texel is touched.
// mip_pyramid: one kernel per level, one thread per texel (its backward likewise, coarse to fine).
// shade_uv: one thread per pixel; its backward one thread per pixel with global atomics.
// Every backward op adds with float atomics, so its sums round in no fixed order: the Python
// wrapper raises torch's determinism error for them (native.alert_nondeterministic).
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
#include "rasterizer_ops.h"

using meshopt::Crossing;
using meshopt::Face;
using meshopt::ScanEdge;

namespace {

constexpr int kTile = 16;
constexpr int kTilePixels = kTile * kTile;  // threads of a raster block
constexpr int kBlock = 256;                 // threads of the other kernels (a multiple of 32)
constexpr int kWarp = 32;
constexpr unsigned kFullMask = 0xffffffffu;

// ----------------------------------------------------------------------------- launches, warps

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

// Adds this lane's N sums for face bf (-1: none) to out[N bf + k]; when every lane of the warp has
// the same face they are reduced over the warp first, one atomic per sum. Call from all 32 lanes.
template <int N>
__device__ __forceinline__ void add_face_sums(float* __restrict__ out, long long bf, float (&sums)[N]) {
  const long long bf0 = __shfl_sync(kFullMask, bf, 0);
  if (__all_sync(kFullMask, bf == bf0)) {
    if (bf0 < 0) return;
    for (int k = 0; k < N; ++k) sums[k] = warp_sum(sums[k]);
    if ((int)threadIdx.x % kWarp == 0)
      for (int k = 0; k < N; ++k) atomicAdd(out + N * bf0 + k, sums[k]);
  } else if (bf >= 0) {
    for (int k = 0; k < N; ++k) atomicAdd(out + N * bf + k, sums[k]);
  }
}

struct AtomicAdd {
  __device__ __forceinline__ void operator()(float* target, float value) const { atomicAdd(target, value); }
};

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

// The binned face lists: tile t of batch item b (t = b * n * n + row * n + column) owns
// faces[start[t], end[t]), in increasing order.
struct TileLists {
  const int32_t* start;
  const int32_t* end;
  const int32_t* faces;
  int n;  // tiles per side
};

// One block per tile of one batch item, one thread per pixel.
template <bool kRgb>
__global__ void __launch_bounds__(kTilePixels) raster_kernel(const meshopt::ForwardParams p, const TileLists tiles) {
  __shared__ Face s_face[kTilePixels];
  __shared__ int s_box[kTilePixels][4];  // x_first, x_end, y_first, y_end (pixels, end exclusive)
  __shared__ int s_id[kTilePixels];

  const int S = p.S, n = tiles.n;
  const int64_t tile_id = blockIdx.x;  // b * n * n + row * n + column
  const int64_t b = tile_id / ((int64_t)n * n);
  const int tile = (int)(tile_id % ((int64_t)n * n));
  const int x = (tile % n) * kTile + (int)threadIdx.x % kTile;
  const int y = (tile / n) * kTile + (int)threadIdx.x / kTile;
  const bool in_image = x < S && y < S;
  const float qx = (float)x, qy = (float)y;

  meshopt::Nearest best;
  best.reset(p.far);
  const int begin = tiles.start[tile_id], end = tiles.end[tile_id];
  for (int chunk = begin; chunk < end; chunk += kTilePixels) {
    const int m = end - chunk < kTilePixels ? end - chunk : kTilePixels;
    if ((int)threadIdx.x < m) {
      const int f = tiles.faces[chunk + threadIdx.x];
      const Face face = meshopt::load_face(p.faces + 9 * (b * p.F + f), S);
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
        best.offer(s_face[i], s_id[i], qx, qy, p.near, p.far);
      }
    }
    __syncthreads();
  }
  if (in_image) meshopt::write_pixel<kRgb>(p, b, x, y, best);
}

}  // namespace

void meshopt::launch_forward(const ForwardParams& p, bool need_rgb, const at::TensorOptions& opts) {
  const c10::cuda::CUDAGuard guard(opts.device());
  const int S = p.S;
  const int64_t B = p.B, F = p.F;

  const int n = (S + kTile - 1) / kTile;
  const int64_t num_tiles = B * n * n;
  TORCH_CHECK(num_tiles < std::numeric_limits<int32_t>::max(), "too many tiles: batch or image too large");
  if (num_tiles == 0) return;
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
        p.faces, num_faces, S, tile_box.data_ptr<int32_t>(), tile_count.data_ptr<int64_t>());
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

  const TileLists tiles{tile_start.data_ptr<int32_t>(), tile_end.data_ptr<int32_t>(),
                        tile_faces.numel() > 0 ? tile_faces.data_ptr<int32_t>() : nullptr, n};
  if (need_rgb)
    raster_kernel<true><<<(unsigned)num_tiles, kTilePixels, 0, stream>>>(p, tiles);
  else
    raster_kernel<false><<<(unsigned)num_tiles, kTilePixels, 0, stream>>>(p, tiles);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

namespace {

// ----------------------------------------------------------------------------- backward: depth, textures

// The face (b * F + f) of pixel p, or -1 for background and out-of-range face indices.
__device__ __forceinline__ long long pixel_face(const int32_t* __restrict__ face_index, int64_t p, int64_t num_pixels,
                                                int64_t SS, int64_t F) {
  if (p >= num_pixels) return -1;
  const int f = face_index[p];
  return f >= 0 && f < F ? (p / SS) * F + f : -1;
}

// One thread per pixel; when the whole warp sees one face its 9 sums are reduced before the atomics.
__global__ void __launch_bounds__(kBlock) depth_gradient_kernel(const meshopt::DepthGradientParams p) {
  const int S = p.S;
  const int64_t SS = (int64_t)S * S, num_pixels = p.B * SS;
  // the loop bound depends on the block only, so whole warps iterate together
  for (int64_t base = (int64_t)blockIdx.x * blockDim.x; base < num_pixels; base += (int64_t)gridDim.x * blockDim.x) {
    const int64_t pixel = base + threadIdx.x;
    const long long bf = pixel_face(p.face_index, pixel, num_pixels, SS, p.F);
    float g9[9] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
    if (bf >= 0) {
      const Face face = meshopt::load_face(p.faces + 9 * bf, S);
      meshopt::add_depth_gradient(face, (float)(pixel % S), (float)((pixel / S) % S), p.grad_depth[pixel], S, g9);
    }
    add_face_sums<9>(p.grad_faces, bf, g9);
  }
}

// Texels of one cube staged per warp in shared memory: cubes up to T = 4 (the default size).
constexpr int kStagedCube = 4 * 4 * 4 * 3;

// Adds into a warp's shared copy of the cube that starts at `cube` in global memory.
struct StagedAdd {
  const float* cube;
  float* stage;
  __device__ __forceinline__ void operator()(float* target, float value) const {
    atomicAdd(stage + (target - cube), value);
  }
};

// One thread per pixel: texture_gradient_pixel into the cube read by the pixel's face. When the
// whole warp sees one face whose cube fits kStagedCube, the warp sums its texels in shared memory
// and adds each nonzero one to global memory once; otherwise every texel is a global atomic. The
// gradient of the light is warp-aggregated the same way.
__global__ void __launch_bounds__(kBlock) texture_gradient_kernel(const meshopt::TextureGradientParams p) {
  __shared__ float stages[kBlock / kWarp][kStagedCube];
  float* stage = stages[threadIdx.x / kWarp];
  const int lane = (int)threadIdx.x % kWarp;
  const int64_t cube_floats = p.cubes.floats();
  const bool can_stage = p.grad_textures != nullptr && cube_floats <= kStagedCube;
  const int64_t SS = (int64_t)p.S * p.S, num_pixels = p.B * SS;
  // the loop bound depends on the block only, so whole warps iterate together
  for (int64_t base = (int64_t)blockIdx.x * blockDim.x; base < num_pixels; base += (int64_t)gridDim.x * blockDim.x) {
    const int64_t pixel = base + threadIdx.x;
    const long long bf = pixel_face(p.face_index, pixel, num_pixels, SS, p.F);
    const long long bf0 = __shfl_sync(kFullMask, bf, 0);
    const bool staged = can_stage && __all_sync(kFullMask, bf == bf0) && bf0 >= 0;  // uniform over the warp
    float grad_light[3] = {0.f, 0.f, 0.f};
    if (staged) {
      const int64_t b = bf0 / p.F, f = bf0 % p.F;
      float* cube = p.grad_textures + p.cubes.offset(b, f);
      for (int i = lane; i < cube_floats; i += kWarp) stage[i] = 0.f;
      __syncwarp();
      meshopt::texture_gradient_pixel(p, b, f, pixel, StagedAdd{cube, stage}, grad_light);
      __syncwarp();
      for (int i = lane; i < cube_floats; i += kWarp)
        if (stage[i] != 0.f) atomicAdd(cube + i, stage[i]);
      __syncwarp();  // read before the next iteration zeroes the stage
    } else if (bf >= 0) {
      meshopt::texture_gradient_pixel(p, bf / p.F, bf % p.F, pixel, AtomicAdd{}, grad_light);
    }
    if (p.grad_light != nullptr) add_face_sums<3>(p.grad_light, bf, grad_light);
  }
}

}  // namespace

void meshopt::launch_backward_depth(const DepthGradientParams& p, const at::TensorOptions& opts) {
  const c10::cuda::CUDAGuard guard(opts.device());
  const int64_t num_pixels = p.B * p.S * p.S;
  if (num_pixels == 0 || p.F == 0) return;
  depth_gradient_kernel<<<grid_for(num_pixels, kBlock), kBlock, 0, c10::cuda::getCurrentCUDAStream()>>>(p);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

void meshopt::launch_backward_textures(const TextureGradientParams& p, const at::TensorOptions& opts) {
  const c10::cuda::CUDAGuard guard(opts.device());
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  // the kernel adds atomically: zero every cube first, read by a pixel or not
  const size_t bytes = (size_t)(p.B * p.cubes.count * p.cubes.floats()) * sizeof(float);
  if (p.grad_textures != nullptr && bytes > 0) C10_CUDA_CHECK(cudaMemsetAsync(p.grad_textures, 0, bytes, stream));
  const int64_t num_pixels = p.B * p.S * p.S;
  if (num_pixels == 0 || p.F == 0) return;
  texture_gradient_kernel<<<grid_for(num_pixels, kBlock), kBlock, 0, stream>>>(p);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

namespace {

// ----------------------------------------------------------------------------- UV shading

// One thread per texel of level l + 1 (mip_down_texel), or of level l (mip_up_texel), grid-stride.
__global__ void __launch_bounds__(kBlock) mip_down_kernel(const meshopt::MipParams p, int l) {
  const int h = p.levels.h[l + 1], w = p.levels.w[l + 1];
  const int64_t count = p.images * h * (int64_t)w;
  for (int64_t k = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; k < count; k += (int64_t)gridDim.x * blockDim.x)
    meshopt::mip_down_texel(p, k / ((int64_t)h * w), l, (int)((k / w) % h), (int)(k % w));
}

__global__ void __launch_bounds__(kBlock) mip_up_kernel(const meshopt::MipParams p, int l) {
  const int h = p.levels.h[l], w = p.levels.w[l];
  const int64_t count = p.images * h * (int64_t)w;
  for (int64_t k = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; k < count; k += (int64_t)gridDim.x * blockDim.x)
    meshopt::mip_up_texel(p, k / ((int64_t)h * w), l, (int)((k / w) % h), (int)(k % w));
}

// One thread per pixel (grid-stride): uv_shade_pixel.
__global__ void __launch_bounds__(kBlock) uv_shade_kernel(const meshopt::UVShadeParams p) {
  const int64_t num_pixels = p.B * (int64_t)p.S * p.S;
  for (int64_t pixel = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; pixel < num_pixels;
       pixel += (int64_t)gridDim.x * blockDim.x)
    meshopt::uv_shade_pixel(p, pixel);
}

// One thread per pixel: uv_shade_pixel_backward with global atomics (texels, corner UVs, light).
__global__ void __launch_bounds__(kBlock) uv_shade_backward_kernel(const meshopt::UVShadeParams p) {
  const int64_t num_pixels = p.B * (int64_t)p.S * p.S;
  for (int64_t pixel = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; pixel < num_pixels;
       pixel += (int64_t)gridDim.x * blockDim.x)
    meshopt::uv_shade_pixel_backward(p, pixel, AtomicAdd{});
}

}  // namespace

void meshopt::launch_mip_pyramid(const MipParams& p, const at::TensorOptions& opts) {
  const c10::cuda::CUDAGuard guard(opts.device());
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const MipLevels& L = p.levels;
  const int64_t texels0 = (int64_t)L.h[0] * L.w[0];
  if (texels0 == 0 || p.images == 0) return;
  // level 0 of each image: one strided copy
  C10_CUDA_CHECK(cudaMemcpy2DAsync(p.packed, 3 * L.total * sizeof(float), p.image, 3 * texels0 * sizeof(float),
                                   3 * texels0 * sizeof(float), p.images, cudaMemcpyDeviceToDevice, stream));
  for (int l = 0; l + 1 < L.count; ++l) {
    mip_down_kernel<<<grid_for(p.images * L.h[l + 1] * (int64_t)L.w[l + 1], kBlock), kBlock, 0, stream>>>(p, l);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
}

void meshopt::launch_mip_pyramid_backward(const MipParams& p, const at::TensorOptions& opts) {
  const c10::cuda::CUDAGuard guard(opts.device());
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  if (p.images == 0) return;
  for (int l = p.levels.count - 2; l >= 0; --l) {
    mip_up_kernel<<<grid_for(p.images * p.levels.h[l] * (int64_t)p.levels.w[l], kBlock), kBlock, 0, stream>>>(p, l);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
}

void meshopt::launch_shade_uv(const UVShadeParams& p, const at::TensorOptions& opts) {
  const c10::cuda::CUDAGuard guard(opts.device());
  const int64_t num_pixels = p.B * p.S * p.S;
  if (num_pixels == 0) return;
  uv_shade_kernel<<<grid_for(num_pixels, kBlock), kBlock, 0, c10::cuda::getCurrentCUDAStream()>>>(p);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

void meshopt::launch_shade_uv_backward(const UVShadeParams& p, const at::TensorOptions& opts) {
  const c10::cuda::CUDAGuard guard(opts.device());
  const int64_t num_pixels = p.B * p.S * p.S;
  if (num_pixels == 0 || p.F == 0) return;
  uv_shade_backward_kernel<<<grid_for(num_pixels, kBlock), kBlock, 0, c10::cuda::getCurrentCUDAStream()>>>(p);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

namespace {

// ----------------------------------------------------------------------------- backward: approximate gradient

// Crossings are numbered per (face, edge, axis) item: item = bf * 6 + edge * 2 + axis.
constexpr int kItemsPerFace = 6;

// One warp per scan line l = b S + u of one axis: its pixels in increasing v, 32 at a time; those
// that meshopt::out_candidate keeps are stored in order (ballot and prefix count) by out_store.
template <int C>
__global__ void __launch_bounds__(kBlock)
    line_lists_kernel(const float* __restrict__ image, const float* __restrict__ grad, int64_t B, int S, int axis,
                      bool alpha_gain, int32_t* __restrict__ count, float* __restrict__ pos, float* __restrict__ data) {
  const int lane = (int)threadIdx.x % kWarp;
  const int64_t warps = (int64_t)gridDim.x * (blockDim.x / kWarp);
  for (int64_t line = (int64_t)blockIdx.x * (blockDim.x / kWarp) + threadIdx.x / kWarp; line < B * S;
       line += warps) {
    const meshopt::ScanLine scan = meshopt::scan_line(line / S, (int)(line % S), axis, S);
    float* pos_line = pos + line * S;
    float* data_line = data + line * S * (C + 1);
    int n = 0;
    for (int v0 = 0; v0 < S; v0 += kWarp) {  // uniform over the warp
      const int v = v0 + lane;
      const int64_t pixel = v < S ? scan.pixel(v) : 0;
      const bool keep = v < S && meshopt::out_candidate(image + pixel * C, grad + pixel * C, C, alpha_gain);
      const unsigned kept = __ballot_sync(kFullMask, keep);
      if (keep)
        meshopt::out_store(image + pixel * C, grad + pixel * C, C, S, n + __popc(kept & ((1u << lane) - 1u)), (float)v,
                           pos_line, data_line);
      n += __popc(kept);
    }
    if (lane == 0) count[line] = n;
  }
}

// The lists of one kind for both axes: count [2, B S], pos [2, B S S], data [2, B S S (C + 1)].
struct LineBuffers {
  at::Tensor count, pos, data;
  meshopt::OutLines axis(int a) const {
    return {count[a].data_ptr<int32_t>(), pos[a].data_ptr<float>(), data[a].data_ptr<float>()};
  }
};

LineBuffers build_lines(const meshopt::XyGradientParams& p, bool alpha_gain, const at::TensorOptions& opts,
                        cudaStream_t stream) {
  const int64_t lines = p.B * p.S;
  LineBuffers buffers{at::empty({2, lines}, opts.dtype(at::kInt)), at::empty({2, lines * p.S}, opts),
                      at::empty({2, lines * p.S * (p.C + 1)}, opts)};
  const dim3 grid(grid_for(lines, kBlock / kWarp));
  for (int axis = 0; axis < 2; ++axis) {
    int32_t* count = buffers.count[axis].data_ptr<int32_t>();
    float* pos = buffers.pos[axis].data_ptr<float>();
    float* data = buffers.data[axis].data_ptr<float>();
    if (p.C == 1)
      line_lists_kernel<1><<<grid, kBlock, 0, stream>>>(p.image, p.grad_image, p.B, p.S, axis, alpha_gain, count, pos, data);
    else if (p.C == 3)
      line_lists_kernel<3><<<grid, kBlock, 0, stream>>>(p.image, p.grad_image, p.B, p.S, axis, alpha_gain, count, pos, data);
    else
      line_lists_kernel<4><<<grid, kBlock, 0, stream>>>(p.image, p.grad_image, p.B, p.S, axis, alpha_gain, count, pos, data);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  return buffers;
}

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
    if (face.valid && meshopt::scan_edge(face, edge, axis, e)) meshopt::edge_lines(e, S, u_first, u_count);
    count[item] = u_count;
  }
}

// One warp per crossing (face, edge, axis, scan line u0): the same sums as face_gradient in
// rasterize_cpu.cpp, the pixels of the OUT and IN runs shared among the 32 lanes. Every branch
// before the reduction is uniform across the warp (all lanes compute the same crossing).
// `inclusive`: the inclusive scan of crossing_count_kernel's counts over the num_items items.
template <int C>
__global__ void __launch_bounds__(kBlock)
    xy_gradient_kernel(const meshopt::XyGradientParams p, const meshopt::OutLineSet out,
                       const int64_t* __restrict__ inclusive, int64_t num_items, int64_t num_crossings) {
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
    const int64_t b = bf / p.F;
    const int f = (int)(bf % p.F);

    const Face face = meshopt::load_face(p.faces + 9 * bf, p.S);
    ScanEdge e;
    meshopt::scan_edge(face, edge, axis, e);
    int u_first, u_count;
    meshopt::edge_lines(e, p.S, u_first, u_count);
    const int u0 = u_first + (int)(k - item_start);
    Crossing c;
    if (!meshopt::cross(e, u0, p.S, c)) continue;

    const meshopt::ScanLine line = meshopt::scan_line(b, u0, axis, p.S);
    float sum_a = 0.f, sum_b = 0.f;
    // OUT: the face grows over the pixels beyond the edge, up to the image border (over the
    // pixels of the line that can contribute only)
    const int64_t pixel_in = line.pixel(c.v_in);
    if (p.face_index[pixel_in] == f) {
      float ref[C];
      for (int ch = 0; ch < C; ++ch) ref[ch] = p.image[pixel_in * C + ch];
      const bool alpha_gain = C == 1 && ref[0] == 1.f;
      const meshopt::OutLines& lines = alpha_gain ? out.alpha_gain[axis] : out.any_gradient[axis];
      meshopt::add_out_run<C>(lines, b * p.S + u0, p.S, ref, c, e.direction, p.eps, lane, kWarp, sum_a, sum_b);
    }
    // IN: the face shrinks and uncovers its own pixels, up to its opposite side
    meshopt::add_in_run<C>(p, f, e, c, line, lane, kWarp, sum_a, sum_b);
    sum_a = warp_sum(sum_a);
    sum_b = warp_sum(sum_b);
    if (lane == 0) {
      if (c.has_a && sum_a != 0.f) atomicAdd(p.grad_faces + 9 * bf + 3 * e.a + e.v_axis, sum_a);
      if (c.has_b && sum_b != 0.f) atomicAdd(p.grad_faces + 9 * bf + 3 * e.b + e.v_axis, sum_b);
    }
  }
}

}  // namespace

void meshopt::launch_backward_xy(const XyGradientParams& p, const at::TensorOptions& opts) {
  const c10::cuda::CUDAGuard guard(opts.device());
  const int64_t num_items = p.B * p.F * kItemsPerFace;
  if (num_items == 0 || p.S == 0) return;
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  auto count = at::empty({num_items}, opts.dtype(at::kLong));
  crossing_count_kernel<<<grid_for(num_items, kBlock), kBlock, 0, stream>>>(p.faces, num_items, p.S,
                                                                              count.data_ptr<int64_t>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  const auto inclusive = at::cumsum(count, 0);
  const int64_t num_crossings = last_value(inclusive);
  if (num_crossings == 0) return;
  // the lists stay alive (and on the stream's pool) until the kernel below has run
  const LineBuffers any_gradient = build_lines(p, false, opts, stream);
  const LineBuffers alpha_gain = p.C == 1 ? build_lines(p, true, opts, stream) : any_gradient;
  meshopt::OutLineSet out;
  for (int axis = 0; axis < 2; ++axis) {
    out.any_gradient[axis] = any_gradient.axis(axis);
    out.alpha_gain[axis] = alpha_gain.axis(axis);
  }
  const dim3 grid(grid_for(num_crossings, kBlock / kWarp));
  const int64_t* inclusive_p = inclusive.data_ptr<int64_t>();
  if (p.C == 1)
    xy_gradient_kernel<1><<<grid, kBlock, 0, stream>>>(p, out, inclusive_p, num_items, num_crossings);
  else if (p.C == 3)
    xy_gradient_kernel<3><<<grid, kBlock, 0, stream>>>(p, out, inclusive_p, num_items, num_crossings);
  else
    xy_gradient_kernel<4><<<grid, kBlock, 0, stream>>>(p, out, inclusive_p, num_items, num_crossings);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) { meshopt::define_ops<at::kCUDA>(m); }
