/** Runs per property: modest in `npm test`, larger with `npm run fuzz` (FUZZ_RUNS=…). */
export const RUNS = Number(process.env.FUZZ_RUNS ?? 150);
