// Positive twin of content_nonempty_fail, at the boundary: RoPE 64 with a 1-channel content part.
#include "mla/core/shape.hpp"

int main() { return mla::mla_shape<65, 64, 256>::nope_dim; }
