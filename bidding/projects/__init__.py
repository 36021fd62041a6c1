"""Projects and sections (项目与标段): registration, review, publication, bidding, opening."""
