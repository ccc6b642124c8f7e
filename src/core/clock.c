#include "core/clock.h"

#include <time.h>

uint64_t ld_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t ld_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t ld_mono_ms(void) { return ld_mono_ns() / 1000000u; }

void ld_clock_init_real(ld_clock *c, double scale)
{
    c->manual = 0;
    c->scale = scale < 1.0 ? 1.0 : scale;
    c->base_domain = ld_wall_ms();
    c->base_mono = ld_mono_ms();
    c->manual_now = 0;
}

void ld_clock_init_manual(ld_clock *c, uint64_t start_ms)
{
    c->manual = 1;
    c->scale = 1.0;
    c->base_domain = start_ms;
    c->base_mono = 0;
    c->manual_now = start_ms;
}

uint64_t ld_clock_now(const ld_clock *c)
{
    if (c->manual) return c->manual_now;
    uint64_t elapsed = ld_mono_ms() - c->base_mono;
    if (c->scale == 1.0) return c->base_domain + elapsed;
    return c->base_domain + (uint64_t)((double)elapsed * c->scale);
}

void ld_clock_advance(ld_clock *c, uint64_t ms)
{
    if (c->manual) c->manual_now += ms;
}

uint64_t ld_clock_real_delay(const ld_clock *c, uint64_t domain_ms)
{
    if (c->manual) return 0;
    double real = (double)domain_ms / c->scale;
    uint64_t r = (uint64_t)real;
    return (double)r < real ? r + 1 : r; /* round up: never fire early */
}
