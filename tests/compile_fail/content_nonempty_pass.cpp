// Positive twin of content_nonempty_fail: RoPE 64 with a 32-channel content part.
#include "mla/core/shape.hpp"

int main() { return mla::mla_shape<96, 64, 256>::nope_dim; }
