// Positive twin of mla_decode_shape_fail and mla_decode_element_fail: an mla_shape with both cache elements.
#include "mla/cpu/mla_decode.hpp"

int main(int argc, char**) {
  if (argc > 100) {  // compiled, never run
    mla::cpu::mla_decode<mla::mla_shape<64, 16, 32>>(mla::cpu::mla_decode_args<float>{});
    mla::cpu::mla_decode<mla::mla_shape<64, 16, 32>>(mla::cpu::mla_decode_args<mla::cpu::bf16>{});
  }
  return 0;
}
