// Answers differential cases with sift, the npm package the Node.js prototype
// relay filtered with, configured as the prototype configured it ($where
// refused). Reads a JSON array of {"criteria": ..., "payload": ...} on stdin
// and writes one JSON array of outcomes: true or false (sift's answer),
// {"refused": message} when sift(criteria) throws, {"threw": message} when
// matching throws. The first line of output is {"sift": version}.
"use strict";

const fs = require("fs");
const path = require("path");

const siftDir = path.join(__dirname, "node_modules", "sift");
const sift = require(siftDir);
const version = JSON.parse(fs.readFileSync(path.join(siftDir, "package.json"), "utf8")).version;

// As the prototype's MATCH_OPTIONS: criteria never run code. (Its $regex
// override only added a pattern-complexity check before sift's own $regex.)
const OPTIONS = {
  operations: {
    $where: () => {
      throw new Error('"$where" condition not supported (dcc)');
    },
  },
};

function message(error) {
  return String(error && error.message !== undefined ? error.message : error);
}

const cases = JSON.parse(fs.readFileSync(0, "utf8"));
const compiled = new Map();
const outcomes = cases.map(({ criteria, payload }) => {
  const key = JSON.stringify(criteria);
  if (!compiled.has(key)) {
    try {
      compiled.set(key, { test: sift(criteria, OPTIONS) });
    } catch (error) {
      compiled.set(key, { refused: message(error) });
    }
  }
  const entry = compiled.get(key);
  if (entry.refused !== undefined) return { refused: entry.refused };
  try {
    return entry.test(payload) === true;
  } catch (error) {
    return { threw: message(error) };
  }
});
process.stdout.write(JSON.stringify({ sift: version }) + "\n" + JSON.stringify(outcomes) + "\n");
