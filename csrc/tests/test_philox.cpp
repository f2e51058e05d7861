// Native test of dllm/philox.h against the Random123 known-answer vectors for Philox4x32-10,
// and of the float conversions used for uniforms.
#include <algorithm>
#include <cmath>

#include "check.h"
#include "dllm/philox.h"

using namespace dllm_test;

int main() {
  struct Kat {
    uint32_t c[4], k[2], out[4];
  };
  const Kat kats[] = {
      {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}},
      {{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu},
       {0xffffffffu, 0xffffffffu},
       {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}},
      {{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u},
       {0xa4093822u, 0x299f31d0u},
       {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}},
  };
  for (const Kat& t : kats) {
    const dllm::Philox4 r = dllm::philox4x32_10(t.c[0], t.c[1], t.c[2], t.c[3], t.k[0], t.k[1]);
    CHECK(r.w[0] == t.out[0] && r.w[1] == t.out[1] && r.w[2] == t.out[2] && r.w[3] == t.out[3],
          "KAT %08x %08x %08x %08x", r.w[0], r.w[1], r.w[2], r.w[3]);
  }
  CHECK(dllm::uniform_open01(0) > 0.0f && dllm::uniform_open01(0xffffffffu) < 1.0f, "open01 range");
  CHECK(dllm::uniform_closed0(0) == 0.0f && dllm::uniform_closed0(0xffffffffu) < 1.0f,
        "closed0 range");
  // log_det: within 2 ulp-ish of the true log over the range Gumbel noise uses.
  double worst = 0;
  for (uint32_t w = 0; w < (1u << 24); w += 4099) {
    const float u = dllm::uniform_open01(w << 8);
    const double rel = std::fabs(dllm::log_det(u) - std::log(static_cast<double>(u))) /
                       std::fabs(std::log(static_cast<double>(u)));
    worst = std::max(worst, rel);
  }
  CHECK(worst < 2.5e-7, "log_det relative error %.3g", worst);
  CHECK(dllm::log_det(1.0f) == 0.0f && dllm::log_det(2.0f) == 0.69314718f, "log_det exact points");
  CHECK(dllm::gumbel_of_word(0xFFFFFFFFu) < 16.7f && dllm::gumbel_of_word(0xFFFFFFFFu) > 16.5f,
        "largest Gumbel draw %f", dllm::gumbel_of_word(0xFFFFFFFFu));
  return report("philox");
}
