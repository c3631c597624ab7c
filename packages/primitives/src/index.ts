export { seededRng, type Rng } from "./random.js";
