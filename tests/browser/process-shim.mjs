// supertokens-website 4.2.0 reads `process.env.TEST_MODE` (guarded by `process !== undefined`,
// which still throws where `process` is undeclared). Bundlers of its day (webpack 4) supplied a
// `process` object; esbuild injects this one into the bundle's scope only.
export const process = { env: {} };
