// Must not compile: the audit's degenerate split (head 64 = RoPE 64, empty content part).
#include "mla/core/shape.hpp"

int main() { return mla::mla_shape<64, 64, 256>::nope_dim; }
