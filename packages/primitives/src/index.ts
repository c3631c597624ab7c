export { IdPool, resized } from "./id-pool.js";
export { seededRng, type Rng } from "./random.js";
export { U64Table } from "./u64-table.js";
