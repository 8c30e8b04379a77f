// Positive twin of rope_dim_positive_fail, at the boundary: the smallest RoPE part (2 channels, one pair).
#include "mla/core/shape.hpp"

int main() { return mla::mla_shape<64, 2, 256>::nope_dim; }
