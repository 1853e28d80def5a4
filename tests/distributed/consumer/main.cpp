// Links the installed tapegrad::distributed; run without mpirun it is a world of one rank.
#include <cstdio>

#include "distributed/data_parallel.hpp"

int main() {
    tapegrad::distributed::context ctx;
    std::printf("distributed consumer: rank %d of %d, shard of 8 rows: [%zu, %zu)\n", ctx.rank(), ctx.size(),
                tapegrad::distributed::shard_range(8, ctx.rank(), ctx.size()).first,
                tapegrad::distributed::shard_range(8, ctx.rank(), ctx.size()).second);
    return 0;
}
