// The SAP Application Router, started the way its documentation shows for extending it.
// `@sap/approuter` comes from the buildpack's `npm install` on CF; here from NODE_PATH
// (tests/node/node_modules).
const approuter = require('@sap/approuter');

const ar = approuter();
ar.start();
