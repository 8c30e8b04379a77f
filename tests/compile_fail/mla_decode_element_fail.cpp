// mla::cpu::mla_decode reads float, bf16 or int8 (with scales) caches, not double.
#include "mla/cpu/mla_decode.hpp"

int main() {
  mla::cpu::mla_decode<mla::mla_shape<64, 16, 32>>(mla::cpu::mla_decode_args<double>{});
  return 0;
}
