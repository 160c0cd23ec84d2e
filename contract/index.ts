export * from "./analytics.ts";
export * from "./duration.ts";
export * from "./keys.ts";
export * from "./parse.ts";
export * from "./pool.ts";
export * from "./problems.ts";
export * from "./regex.ts";
export * from "./routes.ts";
