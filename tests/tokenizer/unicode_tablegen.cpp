// Prints the character-class table that include/mla/tokenizer/unicode.hpp embeds, from ICU.
//
// Build and run (needs libicu-dev; the target is not part of the default build):
//   cmake --build <build> --target mla_tokenizer_unicode_tablegen
//   <build>/tests/tokenizer/mla_tokenizer_unicode_tablegen > table.txt
// then replace the lines between "BEGIN GENERATED" and "END GENERATED" in unicode.hpp with the
// output. The classes are the ones the GPT-2 pre-tokenizer regex uses: \p{L} (general category L*),
// \p{N} (N*), \s (the White_Space property), everything else. Each entry is (first code point << 2)
// | class, and the class holds until the next entry's first code point.
#include <cstdint>

#include <unicode/uchar.h>

#include "class_table_gen.hpp"

namespace {
unsigned class_of(UChar32 cp) {
  if (u_hasBinaryProperty(cp, UCHAR_WHITE_SPACE)) return 3;
  const std::int32_t mask = U_GET_GC_MASK(cp);
  if (mask & U_GC_L_MASK) return 1;
  if (mask & U_GC_N_MASK) return 2;
  return 0;
}
}  // namespace

int main() {
  return mla_tablegen::print_class_runs(
      {"tests/tokenizer/unicode_tablegen.cpp", "unicode_table_version", "class_runs", 2, 6}, class_of);
}
