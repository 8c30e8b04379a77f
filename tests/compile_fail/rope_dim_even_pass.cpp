// Positive twin of rope_dim_even_fail: an even RoPE dim compiles.
#include "mla/core/shape.hpp"

int main() { return mla::mla_shape<64, 32, 256>::nope_dim; }
