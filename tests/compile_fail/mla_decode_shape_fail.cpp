// mla::cpu::mla_decode takes an mla::mla_shape, not any type.
#include "mla/cpu/mla_decode.hpp"

int main() {
  mla::cpu::mla_decode<int>(mla::cpu::mla_decode_args<float>{});
  return 0;
}
