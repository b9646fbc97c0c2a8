// Entry point of the browser bundle: the unmodified supertokens-website 4.2.0 SDK (its
// fetch-based `AuthHttpRequest` class, the package's default export) as `window.supertokens`.
window.supertokens = require("supertokens-website").default;
