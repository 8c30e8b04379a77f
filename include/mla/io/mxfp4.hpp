// mla::io MXFP4 as stored by gpt-oss checkpoints (formats.md §1.8): exact dequantisation to float.
//
//   `*_blocks`  U8 [..., G, 16]: 16 bytes = 32 FP4 (E2M1) values per block; the LOW nibble of byte b
//               is element 2b, the HIGH nibble element 2b + 1.
//   `*_scales`  U8 [..., G]:     one E8M0 byte per block, value 2^(s - 127).
//   result      [..., G * 32]:   W[..., 32g + 2b]     = E2M1[blk[..., g, b] & 15] * 2^(s[..., g] - 127)
//                                W[..., 32g + 2b + 1] = E2M1[blk[..., g, b] >> 4] * 2^(s[..., g] - 127)
// Every result is a float (and a bfloat16) exactly: a power of two times one of {0, .5, 1, 1.5, 2, 3,
// 4, 6}. Scale byte 255 is NaN in the OCP MX specification and gives NaN here.
// (ggml's MXFP4 blocks use another nibble order; quant_blocks.hpp handles that layout.)
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "mla/core/error.hpp"
#include "mla/io/dtype.hpp"
#include "mla/io/mapped_file.hpp"

namespace mla::io {

// FP4 E2M1, indexed by the nibble: bit 3 is the sign, bits 2..0 index {0, .5, 1, 1.5, 2, 3, 4, 6}.
inline constexpr float fp4_e2m1_values[16] = {+0.0f, +0.5f, +1.0f, +1.5f, +2.0f, +3.0f, +4.0f, +6.0f,
                                              -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};

inline constexpr std::size_t mxfp4_block_values = 32;  // values per block
inline constexpr std::size_t mxfp4_block_bytes = 16;   // packed bytes per block

// One block: 16 packed bytes and its scale byte -> 32 floats.
inline void dequantize_mxfp4_block(const std::uint8_t* block, std::uint8_t scale, float* out) {
  const float s = e8m0_to_float(scale);
  for (std::size_t b = 0; b < mxfp4_block_bytes; ++b) {
    out[2 * b] = fp4_e2m1_values[block[b] & 0x0F] * s;
    out[2 * b + 1] = fp4_e2m1_values[block[b] >> 4] * s;
  }
}

// `scales.size` consecutive blocks (blocks.size == 16 * scales.size) -> out[0 .. 32 * scales.size).
inline void dequantize_mxfp4_row(byte_span blocks, byte_span scales, float* out, std::size_t n_out) {
  check(blocks.size / mxfp4_block_bytes == scales.size && blocks.size % mxfp4_block_bytes == 0, "mxfp4: ", blocks.size,
        " block bytes do not match ", scales.size, " scales (16 bytes each)");
  check(n_out == scales.size * mxfp4_block_values, "mxfp4: ", scales.size, " blocks give ",
        scales.size * mxfp4_block_values, " values, output has room for ", n_out);
  for (std::size_t g = 0; g < scales.size; ++g) {
    dequantize_mxfp4_block(blocks.data + g * mxfp4_block_bytes, scales.data[g], out + g * mxfp4_block_values);
  }
}

// Checks a (blocks [..., G, 16], scales [..., G]) pair and returns the dequantised shape
// [..., G * 32]. `name` (e.g. "model.layers.0.mlp.experts.down_proj") goes into the errors.
inline std::vector<std::int64_t> mxfp4_dequantized_shape(const std::vector<std::int64_t>& blocks_shape,
                                                         const std::vector<std::int64_t>& scales_shape,
                                                         std::string_view name) {
  auto show = [](const std::vector<std::int64_t>& s) {
    std::string r = "[";
    for (std::size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
    return r + "]";
  };
  check(blocks_shape.size() >= 2 && blocks_shape.back() == 16, "mxfp4 '", name, "': blocks shape ", show(blocks_shape),
        " is not [..., G, 16]");
  check(scales_shape.size() + 1 == blocks_shape.size(), "mxfp4 '", name, "': scales shape ", show(scales_shape),
        " should have rank ", blocks_shape.size() - 1, " to match blocks ", show(blocks_shape));
  for (std::size_t i = 0; i < scales_shape.size(); ++i) {
    check(scales_shape[i] == blocks_shape[i], "mxfp4 '", name, "': scales shape ", show(scales_shape),
          " does not match blocks shape ", show(blocks_shape), " (expected ",
          show(std::vector<std::int64_t>(blocks_shape.begin(), blocks_shape.end() - 1)), ")");
  }
  std::vector<std::int64_t> out(blocks_shape.begin(), blocks_shape.end() - 1);
  out.back() *= static_cast<std::int64_t>(mxfp4_block_values);
  return out;
}

// Dequantises a whole (blocks, scales) pair (raw U8 bytes with their shapes) into a row-major float
// buffer of shape mxfp4_dequantized_shape(...).
inline std::vector<float> dequantize_mxfp4(const std::vector<std::int64_t>& blocks_shape, byte_span blocks,
                                           const std::vector<std::int64_t>& scales_shape, byte_span scales,
                                           std::string_view name) {
  (void)mxfp4_dequantized_shape(blocks_shape, scales_shape, name);
  std::uint64_t n_blocks = 1;
  for (const std::int64_t d : scales_shape) {
    check(d >= 0 && (d == 0 || n_blocks <= UINT64_MAX / static_cast<std::uint64_t>(d)), "mxfp4 '", name,
          "': bad scales dimension ", d);
    n_blocks *= static_cast<std::uint64_t>(d);
  }
  check(scales.size == n_blocks, "mxfp4 '", name, "': scales hold ", scales.size, " bytes, shape needs ", n_blocks);
  check(blocks.size / mxfp4_block_bytes == n_blocks && blocks.size % mxfp4_block_bytes == 0, "mxfp4 '", name,
        "': blocks hold ", blocks.size, " bytes, shape needs ", n_blocks * mxfp4_block_bytes);
  std::vector<float> out(static_cast<std::size_t>(n_blocks) * mxfp4_block_values);
  dequantize_mxfp4_row(blocks, scales, out.data(), out.size());
  return out;
}

}  // namespace mla::io
