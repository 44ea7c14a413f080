#include "backoff.h"

#include <algorithm>
#include <cmath>

namespace gstmtx {

Backoff::Backoff(RetryPolicy policy, std::uint64_t seed) : policy_(policy), rng_(seed) {}

bool Backoff::exhausted() const {
  return policy_.max_retries >= 0 && attempts_ >= policy_.max_retries;
}

std::optional<Millis> Backoff::next_delay(Millis at_least) {
  if (exhausted())
    return std::nullopt;

  const double base = static_cast<double>(std::max<Millis::rep>(policy_.initial_delay.count(), 0));
  const double cap = static_cast<double>(std::max<Millis::rep>(policy_.max_delay.count(), 0));
  /* Clamp the exponent so the power never overflows whatever the attempt count. */
  const int exponent = std::min(attempts_, 62);
  double delay = std::min(base * std::pow(std::max(policy_.multiplier, 1.0), exponent), cap);

  const double jitter = std::clamp(policy_.jitter, 0.0, 1.0);
  if (jitter > 0.0 && delay > 0.0) {
    std::uniform_real_distribution<double> spread(1.0 - jitter, 1.0 + jitter);
    delay = std::min(delay * spread(rng_), cap);
  }
  const double server_cap = static_cast<double>(std::max<Millis::rep>(policy_.max_server_delay.count(), 0));
  delay = std::max(delay, std::min(static_cast<double>(at_least.count()), server_cap));

  ++attempts_;
  return Millis{static_cast<Millis::rep>(std::llround(delay))};
}

void Backoff::on_connected(Clock::time_point now) { connected_at_ = now; }

void Backoff::on_disconnected(Clock::time_point now) {
  if (connected_at_ && now - *connected_at_ >= policy_.stable_period)
    attempts_ = 0;
  connected_at_.reset();
}

void Backoff::reset() {
  attempts_ = 0;
  connected_at_.reset();
}

}  // namespace gstmtx
