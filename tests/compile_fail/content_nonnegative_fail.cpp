// Must not compile: RopeDim larger than HeadDim.
#include "mla/core/shape.hpp"

int main() { return mla::mla_shape<64, 80, 256>::nope_dim; }
