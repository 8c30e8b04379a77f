// Positive twin of rope_dim_even_fail, at the boundary: RoPE 62 (the even neighbour of 63) with a 2-channel content
// part.
#include "mla/core/shape.hpp"

int main() { return mla::mla_shape<64, 62, 256>::nope_dim; }
