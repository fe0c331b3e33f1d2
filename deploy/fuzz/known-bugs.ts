/**
 * Bugs the fuzzer has found and that are not fixed yet. Each has a minimal reproduction in
 * test/fuzz marked `it.fails` (it starts failing, i.e. passing, once the bug is fixed: then
 * delete the entry here and the `.fails`). Fuzzing goes on around them: inputs that hit one are
 * counted and reported instead of stopping the run.
 */
export const KNOWN_BUGS = {} as const;
