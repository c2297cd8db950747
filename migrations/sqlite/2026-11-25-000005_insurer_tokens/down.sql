DROP TABLE insurer_tokens;
