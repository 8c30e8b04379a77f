// Must not compile: no decoupled RoPE key.
#include "mla/core/shape.hpp"

int main() { return mla::mla_shape<64, 0, 256>::nope_dim; }
