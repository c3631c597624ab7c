// Scheduling moved to @dynamo/scheduling and the seeded PRNG to @dynamo/primitives. This name stays only
// for the importers of `seededRng` not moved yet; import from @dynamo/primitives instead.
export { seededRng, type Rng } from "@dynamo/primitives";
