// Must not compile: an empty latent.
#include "mla/core/shape.hpp"

int main() { return mla::mla_shape<64, 32, 0>::nope_dim; }
