// mla::cpu::gqa_decode reads float or bf16 caches; int8 is for MLA latent caches only (they carry scales).
#include <cstdint>

#include "mla/cpu/gqa_decode.hpp"

int main() {
  mla::cpu::gqa_decode(mla::cpu::gqa_decode_args<std::int8_t>{});
  return 0;
}
