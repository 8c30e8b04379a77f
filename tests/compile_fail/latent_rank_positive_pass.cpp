// Positive twin of latent_rank_positive_fail: the smallest latent compiles.
#include "mla/core/shape.hpp"

int main() { return mla::mla_shape<64, 32, 1>::nope_dim; }
