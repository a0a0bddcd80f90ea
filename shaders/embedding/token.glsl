// The token at position p as an index, or -1 if it is not an integer in [0, NUM_EMBEDDINGS).
int token_at(uint p) {
    const float v = tokens[p];
    return (v >= 0.0 && v < float(NUM_EMBEDDINGS) && v == floor(v)) ? int(v) : -1;   // NaN fails every test
}
