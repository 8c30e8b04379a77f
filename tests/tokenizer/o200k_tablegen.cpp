// Prints the character-class table that include/mla/tokenizer/o200k.hpp embeds, from ICU.
//
// Build and run (needs libicu-dev; the target is not part of the default build):
//   cmake --build <build> --target mla_tokenizer_o200k_tablegen
//   <build>/tests/tokenizer/mla_tokenizer_o200k_tablegen > table.txt
// then replace the lines between "BEGIN GENERATED" and "END GENERATED" in o200k.hpp with the output.
// The classes are the ones the o200k regex distinguishes: upper (Lu Lt), lower (Ll), caseless
// letters (Lm Lo), marks (M*), numbers (N*), whitespace (the White_Space property, regex \s), other.
// Each entry is (first code point << 3) | class, and the class holds until the next entry.
#include <cstdint>

#include <unicode/uchar.h>

#include "class_table_gen.hpp"

namespace {
unsigned class_of(UChar32 cp) {
  if (u_hasBinaryProperty(cp, UCHAR_WHITE_SPACE)) return 6;
  const std::int32_t mask = U_GET_GC_MASK(cp);
  if (mask & (U_GC_LU_MASK | U_GC_LT_MASK)) return 1;
  if (mask & U_GC_LL_MASK) return 2;
  if (mask & (U_GC_LM_MASK | U_GC_LO_MASK)) return 3;
  if (mask & U_GC_M_MASK) return 4;
  if (mask & U_GC_N_MASK) return 5;
  return 0;
}
}  // namespace

int main() {
  return mla_tablegen::print_class_runs(
      {"tests/tokenizer/o200k_tablegen.cpp", "o200k_table_version", "o200k_class_runs", 3, 7}, class_of);
}
