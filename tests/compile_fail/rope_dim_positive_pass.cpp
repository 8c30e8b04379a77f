// Positive twin of rope_dim_positive_fail.
#include "mla/core/shape.hpp"

int main() { return mla::mla_shape<64, 16, 256>::nope_dim; }
