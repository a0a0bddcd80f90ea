// The sum of a quad's four components in one fixed order, (x + y) + (z + w): how every shader
// that sums in quads (four interleaved partial sums) adds them up, so the same values give the
// same bits in all of them.
float quad_sum(const vec4 v) {
    return (v.x + v.y) + (v.z + v.w);
}
