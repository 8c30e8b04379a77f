// Must not compile: RopeDim odd (RoPE rotates channel pairs).
#include "mla/core/shape.hpp"

int main() { return mla::mla_shape<64, 63, 256>::nope_dim; }
