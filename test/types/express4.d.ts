// Express 4, installed as the `express4` alias next to Express 5 so the server tests run both;
// its API is the same as far as the tests use it.
declare module 'express4' {
  import express from 'express';
  export default express;
}
